"""PR-19: after a production deployment the pipeline reports the smoke test of the critical
journeys against it. A failed smoke test marks the deployment failed, records the rollback
against the change (its rollback plan, in the audit trail) and notifies the domain."""

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from approvals.models import Notification
from audit.models import AuditEvent
from changelogs.models import Changelog
from releasegate.models import Deployment
from tests.changelogs.evidence_files import junit_with_journeys
from tests.conftest import Cast
from tests.releasegate.gate_support import check, ready_changelog, report_succeeded


@pytest.fixture
def deployed(cast: Cast) -> tuple[Changelog, Deployment]:
    changelog = ready_changelog(cast)
    check(cast.pipeline.client())
    response = report_succeeded(cast.pipeline.client(), changelog, "run-1")
    assert response.status_code == 201, response.json()
    return changelog, Deployment.objects.get(pk=response.json()["id"])


def _smoke(client: Any, deployment: Deployment, outcomes: dict[str, str]) -> Any:
    body = {"file": SimpleUploadedFile("smoke.xml", junit_with_journeys(outcomes))}
    return client.post(f"/api/v1/deployments/{deployment.pk}/smoke", body, format="multipart")


@pytest.mark.requirement("PR-19")
def test_a_passing_smoke_test_is_recorded_against_the_deployment(
    cast: Cast, deployed: tuple[Changelog, Deployment]
) -> None:
    changelog, deployment = deployed

    response = _smoke(cast.pipeline.client(), deployment, {"PAY-001": "passed", "PAY-002": "passed"})

    assert response.status_code == 201, response.json()
    assert response.json()["passed"] is True
    assert response.json()["journeys"] == {"PAY-001": "passed", "PAY-002": "passed"}
    deployment.refresh_from_db()
    changelog.refresh_from_db()
    assert deployment.smoke_status == "passed"
    assert changelog.status == "deployed"
    assert AuditEvent.objects.filter(action="deployment:smoke_passed", target_id=str(deployment.pk)).count() == 1


@pytest.mark.requirement("PR-19")
def test_a_failed_smoke_test_marks_the_deployment_failed_records_the_rollback_and_notifies(
    cast: Cast, deployed: tuple[Changelog, Deployment]
) -> None:
    changelog, deployment = deployed

    response = _smoke(cast.pipeline.client(), deployment, {"PAY-001": "failed", "PAY-002": "passed"})

    assert response.status_code == 201, response.json()
    assert response.json()["passed"] is False
    assert response.json()["failed_journeys"] == ["PAY-001"]
    deployment.refresh_from_db()
    changelog.refresh_from_db()
    assert deployment.smoke_status == "failed"
    assert changelog.status == "rolled_back"
    event = json.loads(AuditEvent.objects.get(action="deployment:smoke_failed").data)
    assert event["changelog"] == str(changelog.pk)
    assert event["rollback_plan"] == changelog.current_revision.content["rollback_plan"]  # type: ignore[union-attr]
    assert event["failed_journeys"] == ["PAY-001"]
    notification = Notification.objects.get(event="deployment.smoke_failed")
    assert cast.approver.email in notification.recipients


@pytest.mark.requirement("PR-19")
def test_a_smoke_test_that_misses_a_critical_journey_fails(cast: Cast, deployed: tuple[Changelog, Deployment]) -> None:
    _, deployment = deployed

    response = _smoke(cast.pipeline.client(), deployment, {"PAY-001": "passed"})

    assert response.status_code == 201
    assert response.json()["passed"] is False
    assert response.json()["failed_journeys"] == ["PAY-002"]


def test_only_the_services_pipelines_report_its_smoke_tests(cast: Cast, deployed: tuple[Changelog, Deployment]) -> None:
    _, deployment = deployed

    response = _smoke(cast.other_pipeline.client(), deployment, {"PAY-001": "passed", "PAY-002": "passed"})

    assert response.status_code == 404
    deployment.refresh_from_db()
    assert deployment.smoke_status == ""


def test_a_smoke_test_of_a_deployment_that_did_not_succeed_is_a_conflict(cast: Cast) -> None:
    changelog = ready_changelog(cast)
    check(cast.pipeline.client())
    started = cast.pipeline.client().post(
        "/api/v1/deployments/",
        {
            "idempotency_key": "run-0",
            "service": "payments-api",
            "environment": "production",
            "artifact_digest": changelog.current_revision.artifact_digest,  # type: ignore[union-attr]
            "status": "started",
            "started_at": "2026-12-03T10:00:00Z",
        },
        format="json",
    )
    deployment = Deployment.objects.get(pk=started.json()["id"])

    response = _smoke(cast.pipeline.client(), deployment, {"PAY-001": "passed", "PAY-002": "passed"})

    assert response.status_code == 409
    assert response.json()["code"] == "smoke_before_success"
