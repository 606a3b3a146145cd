"""Deployment reports: covered ones move the changelog on; anything no allow decision covered
is an unauthorised change, flagged and listed at once; replays change nothing."""

import json
from datetime import timedelta
from typing import Any

import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from releasegate.models import Deployment
from tests.conftest import Cast
from tests.factories import DIGEST, OTHER_DIGEST
from tests.releasegate.gate_support import check, ready_changelog

URL = "/api/v1/deployments/"


def report(client: APIClient, key: str, *, status: str = "succeeded", digest: str = DIGEST, **extra: Any) -> Any:
    body = {
        "idempotency_key": key,
        "service": "payments-api",
        "environment": "production",
        "artifact_digest": digest,
        "status": status,
        "pipeline_run_url": "https://ci.bank.example/payments-api/runs/812",
        "started_at": "2026-11-27T10:00:00Z",
        **extra,
    }
    return client.post(URL, body, format="json")


def test_a_covered_deployment_marks_the_changelog_deployed(cast: Cast) -> None:
    changelog = ready_changelog(cast)
    pipeline = cast.pipeline.client()
    decision = check(pipeline).json()

    started = report(pipeline, "run-812-started", status="started")
    succeeded = report(pipeline, "run-812-succeeded", finished_at="2026-11-27T10:04:00Z")

    assert started.status_code == 201
    assert started.json()["decision"] == decision["decision_id"]
    assert succeeded.json()["unauthorised"] is False
    changelog.refresh_from_db()
    assert changelog.status == "deployed"
    assert not cast.session(cast.auditor).get("/api/v1/exceptions/unauthorised-deployments").json()
    # The change of status is on the changelog's own audit trail, with who reported it.
    moves = AuditEvent.objects.filter(action="changelog:status_changed", target_id=str(changelog.pk)).order_by("id")
    assert [(event.actor, json.loads(event.data)["to"]) for event in moves][-1] == (
        "service_account:svc-payments-ci",
        "deployed",
    )


def test_a_digest_no_allow_decision_covered_is_flagged_unauthorised_and_listed(
    cast: Cast, mailoutbox: list[Any], django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    ready_changelog(cast)
    pipeline = cast.pipeline.client()
    check(pipeline)  # allow for DIGEST

    with django_capture_on_commit_callbacks(execute=True):
        response = report(pipeline, "run-813", digest=OTHER_DIGEST)

    assert response.status_code == 201
    assert response.json()["unauthorised"] is True
    listed = cast.session(cast.auditor).get("/api/v1/exceptions/unauthorised-deployments").json()
    assert [item["id"] for item in listed] == [response.json()["id"]]
    assert AuditEvent.objects.filter(action="deployment:unauthorised").count() == 1
    assert [mail.to for mail in mailoutbox if "UNAUTHORISED" in mail.subject] == [["approver@bank.example"]]


def test_a_deployment_without_asking_the_gate_is_unauthorised(cast: Cast) -> None:
    ready_changelog(cast)

    assert report(cast.pipeline.client(), "run-814").json()["unauthorised"] is True


def test_a_deployment_after_a_denial_is_unauthorised(cast: Cast) -> None:
    ready_changelog(cast, approved=False)
    pipeline = cast.pipeline.client()
    assert check(pipeline).json()["decision"] == "deny"

    assert report(pipeline, "run-815").json()["unauthorised"] is True


def test_an_allow_decision_covers_only_its_validity(cast: Cast) -> None:
    ready_changelog(cast)
    pipeline = cast.pipeline.client()
    check(pipeline)

    with time_machine.travel(timezone.now() + timedelta(minutes=61)):
        late = report(pipeline, "run-816", pipeline_run_url="https://ci.bank.example/payments-api/runs/816")

    assert late.json()["unauthorised"] is True


def test_replaying_the_same_report_changes_nothing(cast: Cast) -> None:
    ready_changelog(cast)
    pipeline = cast.pipeline.client()
    first = report(pipeline, "run-817", digest=OTHER_DIGEST)
    events = AuditEvent.objects.count()

    again = report(pipeline, "run-817", digest=OTHER_DIGEST)

    assert again.status_code == 200
    assert again.json() == first.json()
    assert Deployment.objects.count() == 1
    assert AuditEvent.objects.count() == events


def test_reusing_a_key_for_another_report_is_a_conflict(cast: Cast) -> None:
    ready_changelog(cast)
    pipeline = cast.pipeline.client()
    report(pipeline, "run-818")

    response = report(pipeline, "run-818", status="rolled_back")

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_reused"


def test_a_rollback_marks_the_changelog_rolled_back(cast: Cast) -> None:
    changelog = ready_changelog(cast)
    pipeline = cast.pipeline.client()
    check(pipeline)
    report(pipeline, "run-819-started", status="started")

    report(pipeline, "run-819-rolled-back", status="rolled_back")

    changelog.refresh_from_db()
    assert changelog.status == "rolled_back"


def test_a_token_reports_only_for_its_own_services(cast: Cast) -> None:
    response = report(cast.other_pipeline.client(), "run-820")

    assert response.status_code == 400
    assert response.json()["code"] == "unknown_service"


def test_deployments_are_listed_for_their_services_and_auditors(cast: Cast) -> None:
    ready_changelog(cast)
    report(cast.pipeline.client(), "run-821")

    assert len(cast.pipeline.client().get(URL).json()["results"]) == 1
    assert len(cast.session(cast.auditor).get(URL).json()["results"]) == 1
    assert cast.other_pipeline.client().get(URL).json()["results"] == []
