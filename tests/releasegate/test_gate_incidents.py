"""The gate learns: while an incident of the domain at or above its severity is unresolved,
only a hotfix answering it goes out (``incident_open``). On PostgreSQL every check here is read
both ways, the SQL and the ORM (conftest.py)."""

import copy
from datetime import timedelta
from typing import Any

from django.utils import timezone

from changelogs.models import Service
from incidents.models import IncidentGatePolicy
from incidents.services import incident_open, incident_status_change
from tests.conftest import Cast
from tests.factories import FACTORY_ACTOR, OTHER_DIGEST, changelog_content
from tests.releasegate.gate_support import check, ready_changelog


def _incident(service: Service, severity: str = "high") -> Any:
    return incident_open(
        acting_user=FACTORY_ACTOR,
        title="Card payments time out",
        services=[service],
        severity=severity,
        started_at=timezone.now() - timedelta(minutes=30),
    )


def _hotfix(cast: Cast, reference: str) -> Any:
    artifact = copy.deepcopy(changelog_content()["artifact"])
    artifact["digest"] = OTHER_DIGEST
    return ready_changelog(
        cast,
        kind="hotfix",
        artifact=artifact,
        hotfix={
            "incident_reference": reference.lower() + " ",
            "emergency_category": "service_outage",
            "emergency_reason": "Card payments fail.",
        },
    )


def _codes(response: Any) -> list[str]:
    return [reason["code"] for reason in response.json()["reasons"]]


def test_a_high_incident_in_payments_stops_a_train_change_and_lets_its_hotfix_through(cast: Cast) -> None:
    ready_changelog(cast)
    pipeline = cast.pipeline.client()
    assert check(pipeline).json()["decision"] == "allow"
    incident = _incident(cast.payments_api)
    _hotfix(cast, incident.reference)

    train = check(pipeline)
    hotfix = check(pipeline, digest=OTHER_DIGEST)

    assert train.json()["decision"] == "deny"
    assert _codes(train) == ["incident_open"]
    assert incident.reference in train.json()["reasons"][0]["message"]
    assert hotfix.json()["decision"] == "allow", hotfix.json()


def test_an_incident_of_another_service_of_the_domain_stops_the_change_too(cast: Cast) -> None:
    from tests.factories import ServiceFactory

    ready_changelog(cast)
    _incident(ServiceFactory(slug="payments-web", domain=cast.payments))

    assert _codes(check(cast.pipeline.client())) == ["incident_open"]


def test_a_hotfix_naming_another_incident_does_not_pass(cast: Cast) -> None:
    incident = _incident(cast.payments_api)
    _incident(cast.payments_api, severity="critical")
    _hotfix(cast, incident.reference)

    assert _codes(check(cast.pipeline.client(), digest=OTHER_DIGEST)) == ["incident_open"]


def test_below_the_domain_severity_or_resolved_or_switched_off_nothing_stops(cast: Cast) -> None:
    ready_changelog(cast)
    pipeline = cast.pipeline.client()
    medium = _incident(cast.payments_api, severity="medium")
    assert check(pipeline).json()["decision"] == "allow"  # default: high and above

    policy = IncidentGatePolicy.objects.create(domain=cast.payments, min_severity="medium")
    assert _codes(check(pipeline)) == ["incident_open"]

    policy.enabled = False
    policy.save()
    assert check(pipeline).json()["decision"] == "allow"

    policy.enabled = True
    policy.save()
    incident_status_change(acting_user=FACTORY_ACTOR, incident=medium, status="resolved")
    assert check(pipeline).json()["decision"] == "allow"


def test_an_incident_in_transfers_does_not_stop_payments(cast: Cast) -> None:
    ready_changelog(cast)
    _incident(cast.transfers_api, severity="critical")

    assert check(cast.pipeline.client()).json()["decision"] == "allow"
