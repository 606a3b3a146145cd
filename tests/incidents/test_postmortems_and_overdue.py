"""Postmortems, DORA reports and long-term fixes: due, overdue, listed and notified once."""

import json
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.utils import timezone

from approvals.models import Notification
from audit.models import AuditEvent
from incidents.models import RootCauseTag
from incidents.services import incident_open, overdue_notify
from incidents.tasks import incidents_overdue
from tests.conftest import Cast
from tests.factories import FACTORY_ACTOR, UserFactory


def _incident(cast: Cast, severity: str = "high") -> Any:
    return incident_open(
        acting_user=FACTORY_ACTOR,
        title="Card payments time out",
        services=[cast.payments_api],
        severity=severity,
        started_at=timezone.now() - timedelta(hours=3),
    )


def _classifier() -> Any:
    user = UserFactory(username="risk-officer")
    user.user_permissions.add(Permission.objects.get(codename="classify_incident"))
    return user


@pytest.mark.django_db
def test_the_default_taxonomy_exists() -> None:
    assert {"database", "network", "configuration", "third-party", "capacity", "code", "data"} <= set(
        RootCauseTag.objects.values_list("slug", flat=True)
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("run", [1, 2])
def test_the_taxonomy_comes_back_after_a_flush(run: int) -> None:
    """Transactional tests empty every table after themselves; the post_migrate handler puts the
    taxonomy back, so the second run sees it as the first did."""
    assert RootCauseTag.objects.filter(slug="database").exists(), run


def test_a_postmortem_overdue_action_and_dora_report_are_listed_and_notified_once(cast: Cast, settings: Any) -> None:
    settings.POSTMORTEM_DUE_DAYS = 5
    incident = _incident(cast)
    client = cast.session(cast.requester)
    officer = cast.session(_classifier())
    dora = officer.post(
        f"/api/v1/incidents/{incident.id}/dora",
        {"critical_services_affected": True, "clients_percent": 40, "downtime_hours": 3},
        format="json",
    )
    assert dora.status_code == 200, dora.content
    assert dora.json()["dora"]["major"] is True
    assert [r["kind"] for r in dora.json()["dora_reports"]] == ["initial", "intermediate", "final"]
    assert (
        client.post(
            f"/api/v1/incidents/{incident.id}/dora", {"critical_services_affected": True}, format="json"
        ).status_code
        == 403
    )
    client.post(f"/api/v1/incidents/{incident.id}/status", {"status": "resolved"}, format="json")
    added = client.post(
        f"/api/v1/incidents/{incident.id}/postmortem/actions/",
        {
            "kind": "long_term",
            "description": "Connection pool limits per tenant",
            "owner": "requester",
            "due_date": str((timezone.now() + timedelta(days=3)).date()),
            "ticket_url": "https://jira.bank.example/browse/PAY-991",
        },
        format="json",
    )
    assert added.status_code == 201, added.content
    assert client.get("/api/v1/exceptions/incidents").json()["postmortems"] == []

    with time_machine.travel(timezone.now() + timedelta(days=7)):
        listed = cast.session(cast.requester).get("/api/v1/exceptions/incidents").json()
        first = overdue_notify()
        second = incidents_overdue()

    assert [p["incident"] for p in listed["postmortems"]] == [incident.reference]
    assert [a["description"] for a in listed["long_term_actions"]] == ["Connection pool limits per tenant"]
    assert [r["kind"] for r in listed["dora_reports"]] == ["initial", "intermediate"]
    assert first == {"postmortems": 1, "actions": 1, "dora_reports": 2}
    assert second == {"postmortems": 0, "actions": 0, "dora_reports": 0}
    events = sorted(Notification.objects.values_list("event", flat=True).distinct())
    assert events == ["dora_report.overdue", "postmortem.overdue", "postmortem_action.overdue"]
    assert Notification.objects.filter(event="dora_report.overdue").count() == 2
    assert AuditEvent.objects.filter(action="postmortem:overdue").count() == 1


def test_a_report_marked_sent_is_no_longer_owed_and_moves_the_next_one(cast: Cast) -> None:
    incident = _incident(cast)
    officer = cast.session(_classifier())
    officer.post(
        f"/api/v1/incidents/{incident.id}/dora",
        {"critical_services_affected": True, "malicious_access_with_possible_data_loss": True},
        format="json",
    )

    sent = officer.post(
        f"/api/v1/incidents/{incident.id}/dora/reports/initial", {"reference": "BaFin-2026-0042"}, format="json"
    )
    again = officer.post(f"/api/v1/incidents/{incident.id}/dora/reports/initial", {"reference": "x"}, format="json")

    assert sent.status_code == 200, sent.content
    reports = {r["kind"]: r for r in sent.json()["dora_reports"]}
    assert reports["initial"]["reference"] == "BaFin-2026-0042"
    assert reports["initial"]["overdue"] is False
    sent_at = reports["initial"]["sent_at"]
    assert (
        reports["intermediate"]["due_at"][:16]
        == (timezone.datetime.fromisoformat(sent_at) + timedelta(hours=72)).isoformat()[:16]
    )
    assert again.status_code == 409
    assert again.json()["code"] == "dora_report_already_sent"
    event = AuditEvent.objects.get(action="incident:dora_report_sent")
    assert json.loads(event.data)["report_reference"] == "BaFin-2026-0042"


def test_a_postmortem_prefilled_tagged_completed_and_recurring_causes_flagged(cast: Cast) -> None:
    client = cast.session(cast.requester)
    references = []
    for _ in range(2):
        incident = _incident(cast, severity="medium")
        client.post(f"/api/v1/incidents/{incident.id}/status", {"status": "resolved"}, format="json")
        url = f"/api/v1/incidents/{incident.id}/postmortem"
        assert client.get(url).json()["chronology"][0]["text"].startswith("Incident opened")
        unknown = client.patch(url, {"tags": ["gremlins"]}, format="json")
        assert unknown.json()["code"] == "root_cause_tag_unknown"
        done = client.patch(
            url,
            {
                "customer_impact": "18 % of card payments failed for 40 minutes.",
                "root_cause": "Pool exhausted after a configuration change.",
                "tags": ["database", "configuration"],
                "participants": ["requester", "approver"],
                "complete": True,
            },
            format="json",
        )
        assert done.status_code == 200, done.content
        assert done.json()["status"] == "completed"
        references.append(incident.reference)

    flagged = client.get("/api/v1/exceptions/incidents").json()["recurring_root_causes"]
    review = client.get("/api/v1/incidents/review").json()

    assert flagged == {"configuration": sorted(references), "database": sorted(references)}
    assert {row["reference"]: row["postmortem_status"] for row in review} == dict.fromkeys(references, "completed")
