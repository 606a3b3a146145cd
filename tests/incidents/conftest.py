import hashlib
import hmac
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.utils import timezone
from rest_framework.test import APIClient

from changelogs.models import Service
from incidents.models import Incident
from incidents.services import incident_open
from tests.factories import FACTORY_ACTOR

DATA = Path(__file__).resolve().parents[1] / "data" / "pagerduty"
SECRET = "pd-secret-current"
OLD_SECRET = "pd-secret-previous"


def payload(name: str) -> bytes:
    return (DATA / f"{name}.json").read_bytes()


def sign(body: bytes, *secrets: str) -> str:
    return ",".join("v1=" + hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in secrets)


def deliver(body: bytes, signature: str | None) -> Any:
    headers = {"HTTP_X_PAGERDUTY_SIGNATURE": signature} if signature is not None else {}
    return APIClient().post("/api/v1/integrations/pagerduty", body, content_type="application/json", **headers)


def with_body(name: str, **event_changes: Any) -> bytes:
    document = json.loads(payload(name))
    document["event"].update(event_changes)
    return json.dumps(document).encode()


def incident_make(*, service: Service, title: str = "Card payments time out", severity: str = "high") -> Incident:
    """An incident opened by the integration an hour ago on ``service``."""
    return incident_open(
        acting_user=FACTORY_ACTOR,
        title=title,
        services=[service],
        severity=severity,
        started_at=timezone.now() - timedelta(hours=1),
    )
