import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from rest_framework.test import APIClient

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
