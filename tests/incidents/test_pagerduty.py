"""PagerDuty V3 webhooks in: signed, idempotent, replay-proof, and right whatever the order."""

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from rest_framework.test import APIClient

from audit.models import AuditEvent
from incidents.models import InboundEvent, Incident, PagerDutyService, TimelineEvent
from tests.conftest import Cast
from tests.incidents.conftest import OLD_SECRET, SECRET, deliver, payload, sign, with_body

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def pagerduty(cast: Cast, settings: Any) -> Cast:
    settings.PAGERDUTY_WEBHOOK_SECRETS = [SECRET]
    PagerDutyService.objects.create(pagerduty_id="PF9KMXH", name="Payments API", service=cast.payments_api)
    return cast


@pytest.fixture(autouse=True)
def _clock() -> Any:
    with time_machine.travel(NOW, tick=False):
        yield


def test_a_triggered_incident_signed_with_the_secret_opens_the_incident(pagerduty: Cast) -> None:
    body = payload("incident.triggered")

    response = deliver(body, sign(body, SECRET))

    assert response.status_code == 202, response.content
    assert response.json() == {"received": "applied", "incident": "INC-00001"}
    incident = Incident.objects.get()
    assert (incident.source, incident.external_id, incident.title) == ("pagerduty", "PGR0VU2", "Card payments time out")
    assert incident.severity == "high"  # P2
    assert list(incident.services.values_list("slug", flat=True)) == ["payments-api"]
    assert incident.started_at == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert TimelineEvent.objects.filter(incident=incident, kind="incident.triggered").exists()
    assert AuditEvent.objects.filter(action="incident:event_received", actor="integration:pagerduty").count() == 1


@pytest.mark.parametrize(
    ("signature", "why"),
    [
        (None, "missing"),
        ("", "empty"),
        ("v1=" + "0" * 64, "wrong"),
        ("v1=" + hmac.new(b"someone-else", b"x", hashlib.sha256).hexdigest(), "another secret"),
        ("v0=" + "0" * 64, "another version only"),
    ],
)
def test_a_missing_or_wrong_signature_is_refused_and_nothing_is_stored(
    pagerduty: Cast, signature: str | None, why: str
) -> None:
    body = payload("incident.triggered")

    response = deliver(body, signature)

    assert response.status_code == 401, why
    assert response.json()["code"] == "incident_webhook_signature_invalid"
    assert not Incident.objects.exists()
    assert not InboundEvent.objects.exists()


def test_a_body_changed_after_signing_is_refused(pagerduty: Cast) -> None:
    body = payload("incident.triggered")
    tampered = body.replace(b"Card payments time out", b"Nothing to see here")

    assert deliver(tampered, sign(body, SECRET)).status_code == 401


def test_during_rotation_any_of_several_signatures_may_match_either_of_our_secrets(
    pagerduty: Cast, settings: Any
) -> None:
    """PagerDuty sends one v1= per secret while its secret rotates; we may hold two while ours does."""
    body = payload("incident.triggered")
    settings.PAGERDUTY_WEBHOOK_SECRETS = [SECRET]
    assert deliver(body, sign(body, "pd-rotated-away", SECRET)).status_code == 202

    settings.PAGERDUTY_WEBHOOK_SECRETS = ["pd-secret-next", OLD_SECRET]
    ack = payload("incident.acknowledged")
    assert deliver(ack, sign(ack, OLD_SECRET)).status_code == 202
    assert deliver(ack, sign(ack, SECRET)).status_code == 401  # retired on our side


def test_without_a_secret_the_receiver_is_not_there(cast: Cast, settings: Any) -> None:
    settings.PAGERDUTY_WEBHOOK_SECRETS = []
    body = payload("incident.triggered")

    response = deliver(body, sign(body, SECRET))

    assert response.status_code == 404
    assert response.json()["code"] == "incident_webhook_not_configured"


def test_a_redelivery_changes_nothing_and_a_reused_event_id_is_refused(pagerduty: Cast) -> None:
    body = payload("incident.triggered")
    deliver(body, sign(body, SECRET))

    again = deliver(body, sign(body, SECRET))
    other = with_body("incident.triggered", occurred_at="2026-12-01T09:01:00.000Z")
    reused = deliver(other, sign(other, SECRET))

    assert again.status_code == 200
    assert again.json() == {"received": "duplicate", "incident": "INC-00001"}
    assert reused.status_code == 409
    assert reused.json()["code"] == "incident_event_id_reused"
    assert Incident.objects.count() == 1
    assert InboundEvent.objects.count() == 1
    assert TimelineEvent.objects.filter(kind="incident.triggered").count() == 1
    assert AuditEvent.objects.filter(action="incident:event_refused").count() == 1


def test_a_replay_of_an_old_signed_event_is_refused_and_audited(pagerduty: Cast, settings: Any) -> None:
    settings.INCIDENT_EVENT_MAX_AGE_SECONDS = 3600
    body = payload("incident.triggered")

    with time_machine.travel(datetime(2026, 12, 2, 10, 0, tzinfo=UTC), tick=False):
        response = deliver(body, sign(body, SECRET))

    assert response.status_code == 409
    assert response.json()["code"] == "incident_event_replayed"
    assert not Incident.objects.exists()
    refusal = AuditEvent.objects.get(action="incident:event_refused")
    assert json.loads(refusal.data)["code"] == "incident_event_replayed"


def _deliver_all(*names: str) -> None:
    for name in names:
        body = payload(name)
        response = deliver(body, sign(body, SECRET))
        assert response.status_code in (200, 202), (name, response.content)


def test_the_whole_story_in_order(pagerduty: Cast) -> None:
    _deliver_all(
        "incident.triggered",
        "incident.acknowledged",
        "incident.priority_updated",
        "incident.annotated",
        "incident.resolved",
    )

    incident = Incident.objects.get()
    assert incident.status == "resolved"
    assert incident.severity == "critical"  # P1
    assert incident.resolved_at == datetime(2026, 12, 1, 9, 40, tzinfo=UTC)
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert [k for k in kinds if k.startswith("incident.")] == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.priority_updated",
        "incident.annotated",
        "incident.resolved",
    ]
    assert "Rolled back payments-api 1.4.2" in incident.timeline.get(kind="incident.annotated").summary


def test_out_of_order_resolved_before_acknowledged_ends_resolved(pagerduty: Cast) -> None:
    """PagerDuty's deliveries can overtake each other: resolved arrives first, then the older
    triggered, acknowledged and priority events; none of them undoes the resolution."""
    _deliver_all(
        "incident.resolved",
        "incident.acknowledged",
        "incident.triggered",
        "incident.annotated",
        "incident.priority_updated",
    )

    incident = Incident.objects.get()
    assert incident.status == "resolved"
    assert incident.resolved_at == datetime(2026, 12, 1, 9, 40, tzinfo=UTC)
    assert incident.started_at == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert incident.severity == "critical"  # the resolved event's own P1 is the newest word on priority
    timeline = list(incident.timeline.filter(kind__startswith="incident.").values_list("kind", flat=True))
    assert timeline == [  # in the order things happened, not the order they arrived
        "incident.triggered",
        "incident.acknowledged",
        "incident.priority_updated",
        "incident.annotated",
        "incident.resolved",
    ]


def test_an_unmapped_pagerduty_service_is_stored_not_applied(cast: Cast, settings: Any) -> None:
    settings.PAGERDUTY_WEBHOOK_SECRETS = [SECRET]
    body = payload("incident.triggered")

    response = deliver(body, sign(body, SECRET))

    assert response.status_code == 200
    assert response.json() == {"received": "unmapped", "incident": None}
    assert not Incident.objects.exists()
    assert InboundEvent.objects.get().outcome == "unmapped"


def test_the_generic_receiver_opens_and_resolves_through_the_same_service(cast: Cast, settings: Any) -> None:
    settings.INCIDENT_WEBHOOK_SECRETS = ["generic-secret"]

    def send(**values: Any) -> Any:
        body = json.dumps({"tool": "opsgenie", "incident_id": "OG-77", **values}).encode()
        signature = "sha256=" + hmac.new(b"generic-secret", body, hashlib.sha256).hexdigest()
        return APIClient().post(
            "/api/v1/integrations/incident-events",
            body,
            content_type="application/json",
            HTTP_X_SIGNATURE_256=signature,
        )

    opened = send(
        event_id="e1",
        action="open",
        occurred_at="2026-12-01T09:30:00Z",
        title="Transfers slow",
        severity="medium",
        services=["transfers-api"],
    )
    resolved = send(event_id="e2", action="resolve", occurred_at="2026-12-01T09:50:00Z")
    unsigned = APIClient().post("/api/v1/integrations/incident-events", b"{}", content_type="application/json")

    assert opened.status_code == 202, opened.content
    assert resolved.status_code == 202, resolved.content
    incident = Incident.objects.get()
    assert (incident.source, incident.external_id, incident.status) == ("webhook", "opsgenie:OG-77", "resolved")
    assert unsigned.status_code == 401


@pytest.mark.parametrize(
    "change",
    [
        {"agent": "someone"},
        {"data": {"type": "incident", "id": 7, "service": "PF9KMXH", "priority": "P1", "title": ["x"]}},
        {"data": {"type": "incident_note", "incident": "PGR0VU2", "content": 5}},
        {"occurred_at": "yesterday"},
        {"occurred_at": "2026-12-01T09:00:00"},
        {"event_type": None},
    ],
)
def test_a_signed_but_malformed_payload_is_refused_or_ignored_never_a_500(
    pagerduty: Cast, change: dict[str, Any]
) -> None:
    body = with_body("incident.triggered", **change)

    response = deliver(body, sign(body, SECRET))

    assert response.status_code in (200, 202, 400), response.content
    if response.status_code == 202:  # a malformed part PagerDuty's event can do without (the agent)
        assert Incident.objects.get().title == "Card payments time out"
    else:
        assert not Incident.objects.exists()
