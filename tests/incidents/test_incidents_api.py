"""Incidents through the API: recorded by people and pipelines, moved on, each change audited."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from incidents.models import Incident, Postmortem
from tests.conftest import Cast
from tests.factories import JourneyFactory


def _open(client, **overrides):  # type: ignore[no-untyped-def]
    started = timezone.now() - timedelta(hours=1)
    body = {
        "title": "Card payments time out",
        "services": ["payments-api"],
        "severity": "high",
        "impact": "10_25",
        "impact_rationale": "Checkout error rate 18 % of active sessions.",
        "started_at": started.isoformat(),
        "detected_at": (started + timedelta(minutes=4)).isoformat(),
        **overrides,
    }
    return client.post("/api/v1/incidents/", body, format="json")


def test_a_pipeline_records_an_incident_of_its_service_and_it_is_audited(cast: Cast) -> None:
    JourneyFactory(journey_id="PAY-001", domain=cast.payments)
    response = _open(cast.pipeline.client(), journeys=["PAY-001"], security=True)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["reference"] == "INC-00001"
    assert body["domains"] == ["payments"]
    assert body["journeys"] == ["PAY-001"]
    assert body["status"] == "open"
    assert body["security"] is True
    assert body["timeline"][0]["kind"] == "opened"
    event = AuditEvent.objects.get(action="incident:opened")
    assert json.loads(event.data)["reference"] == "INC-00001"
    assert event.actor == "service_account:svc-payments-ci"


def test_an_incident_of_a_service_the_caller_does_not_manage_is_refused_and_nothing_is_left(cast: Cast) -> None:
    response = _open(cast.pipeline.client(), services=["transfers-api"])

    assert response.status_code == 403
    assert response.json()["code"] == "incident_service_not_yours"
    assert not Incident.objects.exists()
    assert not AuditEvent.objects.filter(action="incident:opened").exists()


def test_detection_before_the_start_is_refused(cast: Cast) -> None:
    now = timezone.now()
    response = _open(
        cast.session(cast.requester), started_at=now.isoformat(), detected_at=(now - timedelta(hours=1)).isoformat()
    )

    assert response.status_code == 400
    assert response.json()["code"] == "incident_times_inconsistent"


def test_status_moves_on_with_its_times_and_resolution_opens_the_postmortem(cast: Cast, settings) -> None:  # type: ignore[no-untyped-def]
    settings.POSTMORTEM_DUE_DAYS = 5
    client = cast.session(cast.requester)
    incident = _open(client).json()
    url = f"/api/v1/incidents/{incident['id']}/status"

    mitigated = client.post(url, {"status": "mitigated"}, format="json").json()
    resolved = client.post(url, {"status": "resolved"}, format="json").json()

    assert mitigated["mitigated_at"] is not None
    assert resolved["status"] == "resolved"
    assert resolved["duration_seconds"] > 3000
    postmortem = Postmortem.objects.get(incident_id=incident["id"])
    assert postmortem.due_at is not None
    assert postmortem.due_at - Incident.objects.get(pk=incident["id"]).resolved_at == timedelta(days=5)
    assert postmortem.chronology[0]["text"].startswith("Incident opened")
    assert [
        json.loads(e.data)["status"]["to"]
        for e in AuditEvent.objects.filter(action="incident:status_changed").order_by("id")
    ] == ["mitigated", "resolved"]
    back = client.post(url, {"status": "mitigated"}, format="json")
    assert back.status_code == 409
    assert back.json()["code"] == "incident_status_transition"


def test_an_update_is_audited_with_what_changed_and_people_outside_see_nothing(cast: Cast) -> None:
    incident = _open(cast.session(cast.requester)).json()
    url = f"/api/v1/incidents/{incident['id']}/"

    response = cast.session(cast.requester).patch(url, {"severity": "critical"}, format="json")

    assert response.status_code == 200
    assert response.json()["severity"] == "critical"
    event = AuditEvent.objects.get(action="incident:updated")
    assert json.loads(event.data)["changed"]["severity"] == {"from": "high", "to": "critical"}
    assert cast.session(cast.other_approver).get(url).status_code == 404
    assert cast.session(cast.approver).get(url).status_code == 200  # signing authority of payments
    assert cast.session(cast.auditor).get(url).status_code == 200
    refused = cast.session(cast.auditor).patch(url, {"severity": "low"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "incident_read_only"
    status = cast.session(cast.auditor).post(
        f"/api/v1/incidents/{incident['id']}/status", {"status": "resolved"}, format="json"
    )
    assert status.status_code == 403
    assert Incident.objects.get(pk=incident["id"]).severity == "critical"
    assert Incident.objects.get(pk=incident["id"]).status == "open"


@pytest.mark.parametrize("field", ["sevrity", "status"])
def test_unknown_fields_are_refused(cast: Cast, field: str) -> None:
    response = _open(cast.session(cast.requester), **{field: "high"})
    assert response.status_code == 400


@pytest.mark.parametrize("body", ["null", "0", "true", '"text"', "[]"])
@pytest.mark.parametrize("path", ["/api/v1/incidents/", "/api/v1/gate/check"])
def test_a_body_that_is_no_object_is_a_400_not_a_500(cast: Cast, body: str, path: str) -> None:
    """Found by the schemathesis fuzz: a bare null or number failed the JSON input check."""
    response = cast.pipeline.client().post(path, body, content_type="application/json")

    assert response.status_code == 400, response.content
