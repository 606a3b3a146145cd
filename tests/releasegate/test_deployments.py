"""Deployment reports: covered ones move the changelog on; anything no allow decision covered
is an unauthorised change, flagged, attached to its change and listed at once; replays change
nothing; a pipeline cannot borrow coverage with a run URL or a backdated start."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from changelogs.models import Changelog
from releasegate.freezes import freeze_create
from releasegate.models import Deployment, GateDecision, NotCovered
from tests.clock import time_passes
from tests.conftest import Cast
from tests.factories import (
    DIGEST,
    OTHER_DIGEST,
    UserFactory,
    authority_give,
    changelog_content,
    changelog_make,
    seen_of,
)
from tests.releasegate.gate_support import PASSWORD, approve, check, complete_evidence, ready_changelog

URL = "/api/v1/deployments/"
RUN_URL = "https://ci.bank.example/payments-api/runs/812"


def text(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def report(
    client: APIClient,
    key: str,
    *,
    status: str = "succeeded",
    digest: str = DIGEST,
    started_at: datetime | None = None,
    **extra: Any,
) -> Any:
    body = {
        "idempotency_key": key,
        "service": "payments-api",
        "environment": "production",
        "artifact_digest": digest,
        "status": status,
        "pipeline_run_url": RUN_URL,
        "started_at": text(started_at or timezone.now()),
        **extra,
    }
    return client.post(URL, body, format="json")


def reject_by_a_second_approver(cast: Cast, changelog: Changelog) -> None:
    """Another signing authority of the domain rejects the approved revision."""
    second = UserFactory(username="second-approver")
    authority_give(domain=cast.payments, user=second)
    rejected = cast.session(second).post(
        f"/api/v1/changelogs/{changelog.id}/approvals/",
        {"decision": "rejected", "reason": "The fee table is wrong.", "password": PASSWORD, **seen_of(changelog)},
        format="json",
    )
    assert rejected.status_code == 201, rejected.json()


def test_a_covered_deployment_marks_the_changelog_deployed(cast: Cast) -> None:
    changelog = ready_changelog(cast)
    pipeline = cast.pipeline.client()
    decision = check(pipeline).json()
    start = timezone.now()

    started = report(pipeline, "run-812-started", status="started", started_at=start)
    succeeded = report(pipeline, "run-812-succeeded", started_at=start, finished_at=text(timezone.now()))

    assert started.status_code == 201
    assert started.json()["decision"] == decision["decision_id"]
    assert succeeded.json()["unauthorised"] is False
    assert succeeded.json()["not_covered_because"] is None
    changelog.refresh_from_db()
    assert changelog.status == "deployed"
    assert not cast.session(cast.auditor).get("/api/v1/exceptions/unauthorised-deployments").json()
    # The change of status is on the changelog's own audit trail, with who reported it.
    moves = AuditEvent.objects.filter(action="changelog:status_changed", target_id=str(changelog.pk)).order_by("id")
    assert [(event.actor, json.loads(event.data)["to"]) for event in moves][-1] == (
        "service_account:svc-payments-ci",
        "deployed",
    )


@pytest.mark.requirement("PR-02", "PR-14")
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
    assert response.json()["not_covered_because"] == "no_allow_decision"
    listed = cast.session(cast.auditor).get("/api/v1/exceptions/unauthorised-deployments").json()
    assert [item["id"] for item in listed] == [response.json()["id"]]
    assert AuditEvent.objects.filter(action="deployment:unauthorised").count() == 1
    assert [mail.to for mail in mailoutbox if "UNAUTHORISED" in mail.subject] == [["approver@bank.example"]]


@pytest.mark.requirement("PR-14")
def test_a_deployment_without_asking_the_gate_is_unauthorised(cast: Cast) -> None:
    ready_changelog(cast)

    assert report(cast.pipeline.client(), "run-814").json()["unauthorised"] is True


def test_a_deployment_after_a_denial_is_unauthorised_and_attached_to_its_change(cast: Cast) -> None:
    changelog = ready_changelog(cast, approved=False)
    pipeline = cast.pipeline.client()
    assert check(pipeline).json()["decision"] == "deny"

    response = report(pipeline, "run-815").json()

    assert response["unauthorised"] is True
    assert response["changelog"] == str(changelog.pk)
    assert response["decision"] is None
    # Only a covered report moves the changelog: it is still waiting for approval.
    changelog.refresh_from_db()
    assert changelog.status == "submitted"


def test_an_allow_decision_covers_only_a_start_within_its_validity(cast: Cast) -> None:
    ready_changelog(cast)
    pipeline = cast.pipeline.client()
    check(pipeline)

    time_passes(timedelta(minutes=61))
    late = report(pipeline, "run-816")

    assert late.json()["unauthorised"] is True
    assert late.json()["not_covered_because"] == "not_valid_at_start"


# Run URLs are labels, never keys to coverage


def test_reusing_a_run_url_after_the_decision_expired_borrows_no_coverage(cast: Cast) -> None:
    ready_changelog(cast)
    pipeline = cast.pipeline.client()
    check(pipeline)
    covered = report(pipeline, "run-812-started", status="started").json()
    assert covered["unauthorised"] is False

    time_passes(timedelta(hours=3))
    # Another deployment, reported under the same run URL as the covered one.
    reused = report(pipeline, "run-812-again", status="started", pipeline_run_url=RUN_URL)

    assert reused.json()["unauthorised"] is True
    assert reused.json()["not_covered_because"] == "not_valid_at_start"
    assert reused.json()["decision"] is None


def test_reusing_a_run_url_after_the_change_was_rejected_borrows_no_coverage(cast: Cast) -> None:
    changelog = ready_changelog(cast)
    pipeline = cast.pipeline.client()
    check(pipeline)
    assert report(pipeline, "run-812-started", status="started").json()["unauthorised"] is False
    reject_by_a_second_approver(cast, changelog)

    # Within the decision's validity, a new deployment under the covered run's URL.
    reused = report(pipeline, "run-812-again", status="succeeded", pipeline_run_url=RUN_URL)

    assert reused.json()["unauthorised"] is True
    assert reused.json()["not_covered_because"] == "changelog_not_approved"
    changelog.refresh_from_db()
    assert changelog.status == "rejected"


def test_later_reports_of_a_covered_deployment_are_recognised_by_its_start(cast: Cast) -> None:
    changelog = ready_changelog(cast)
    pipeline = cast.pipeline.client()
    check(pipeline)
    start = timezone.now()
    report(pipeline, "started", status="started", started_at=start, pipeline_run_url="")
    succeeded = report(pipeline, "succeeded", started_at=start, pipeline_run_url="https://ci.bank.example/other")

    with time_machine.travel(timezone.now() + timedelta(days=2)):
        rolled_back = report(pipeline, "rolled-back", status="rolled_back", started_at=start)

    assert succeeded.json()["unauthorised"] is False
    assert rolled_back.json()["unauthorised"] is False
    assert rolled_back.json()["decision"] == succeeded.json()["decision"]
    changelog.refresh_from_db()
    assert changelog.status == "rolled_back"


# Times that cannot be


@pytest.mark.parametrize(
    ("times", "code", "field"),
    [
        ({"started_at": timedelta(minutes=10)}, "deployment_starts_in_future", "started_at"),
        (
            {"started_at": timedelta(0), "finished_at": timedelta(minutes=10)},
            "deployment_finishes_in_future",
            "finished_at",
        ),
        (
            {"started_at": timedelta(0), "finished_at": -timedelta(minutes=5)},
            "deployment_finishes_before_start",
            "finished_at",
        ),
    ],
)
def test_a_report_with_impossible_times_is_refused_and_nothing_is_recorded(
    cast: Cast, times: dict[str, timedelta], code: str, field: str
) -> None:
    ready_changelog(cast)
    pipeline = cast.pipeline.client()
    check(pipeline)
    now = timezone.now()
    events = AuditEvent.objects.count()

    finished = times.get("finished_at")
    response = report(
        pipeline,
        "run-900",
        started_at=now + times["started_at"],
        **({"finished_at": text(now + finished)} if finished is not None else {}),
    )

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert list(response.json()["fields"]) == [field]
    assert Deployment.objects.count() == 0
    assert AuditEvent.objects.count() == events


def test_a_start_a_little_ahead_of_the_servers_clock_is_taken(cast: Cast) -> None:
    ready_changelog(cast)
    pipeline = cast.pipeline.client()
    check(pipeline)

    response = report(pipeline, "run-901", started_at=timezone.now() + timedelta(seconds=30))

    assert response.status_code == 201
    assert response.json()["unauthorised"] is False


# The coverage rules, one row each: every row differs from a covered deployment in one respect
# only, so that it fails if that rule is taken away.


@dataclass(frozen=True)
class Case:
    """Arranges a situation and reports one deployment in it; returns the report's answer."""

    arrange: Callable[[Cast, APIClient], Any]
    not_covered_because: str | None


def _approved_elsewhere(cast: Cast, pipeline: APIClient) -> Any:
    """transfers-api has an approved changelog of the same digest and an allow decision for it;
    payments-api's own approved changelog was never checked."""
    ready_changelog(cast)
    other = changelog_make(service=cast.transfers_api, by=cast.other_pipeline.account)
    transfers = cast.other_pipeline.client()
    complete_evidence(transfers, other)
    assert transfers.post(f"/api/v1/changelogs/{other.id}/submit").status_code == 200
    approve(cast, other, cast.other_approver)
    assert check(transfers, service="transfers-api").json()["decision"] == "allow"
    return report(pipeline, "run")


def _other_environment(cast: Cast, pipeline: APIClient) -> Any:
    ready_changelog(cast)
    assert check(pipeline, environment="production-eu").json()["decision"] == "allow"
    return report(pipeline, "run")  # to production


def _other_digest(cast: Cast, pipeline: APIClient) -> Any:
    ready_changelog(cast)
    check(pipeline)
    return report(pipeline, "run", digest=OTHER_DIGEST)


def _denied(cast: Cast, pipeline: APIClient) -> Any:
    """Approved, but a freeze makes the gate deny."""
    ready_changelog(cast)
    now = timezone.now()
    freeze_create(
        acting_user=cast.admin,
        domain=None,
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        reason="Year end",
    )
    assert check(pipeline).json()["decision"] == "deny"
    return report(pipeline, "run")


def _started_before_the_check(cast: Cast, pipeline: APIClient) -> Any:
    ready_changelog(cast)
    start = timezone.now() - timedelta(minutes=5)
    check(pipeline)
    return report(pipeline, "run", started_at=start)


def _started_after_the_decision_expired(cast: Cast, pipeline: APIClient) -> Any:
    ready_changelog(cast)
    check(pipeline)
    time_passes(timedelta(minutes=61))
    return report(pipeline, "run")


def _backdated_into_an_old_decision(cast: Cast, pipeline: APIClient) -> Any:
    """Deployed three hours after the check, reported as started five minutes after it."""
    ready_changelog(cast)
    check(pipeline)
    time_passes(timedelta(hours=3))
    checked = GateDecision.objects.get().evaluated_at
    return report(pipeline, "run", started_at=checked + timedelta(minutes=5))


def _rejected_after_the_check(cast: Cast, pipeline: APIClient) -> Any:
    changelog = ready_changelog(cast)
    check(pipeline)
    reject_by_a_second_approver(cast, changelog)
    return report(pipeline, "run")


def _revised_and_approved_again(cast: Cast, pipeline: APIClient) -> Any:
    """The decision judged revision 1; revision 2 (same digest, other steps) is approved now."""
    changelog = ready_changelog(cast)
    check(pipeline)
    content = changelog_content(deploy_steps=[{"description": "Something else", "command": "curl x | sh"}])
    assert pipeline.patch(f"/api/v1/changelogs/{changelog.id}/", content, format="json").status_code == 200
    assert pipeline.post(f"/api/v1/changelogs/{changelog.id}/submit").status_code == 200
    approve(cast, changelog)
    assert Changelog.objects.get(pk=changelog.pk).status == "approved"
    return report(pipeline, "run")


def _deployed_by_another_deployment(cast: Cast, pipeline: APIClient) -> Any:
    ready_changelog(cast)
    check(pipeline)
    first = timezone.now() - timedelta(seconds=1)
    assert report(pipeline, "first", started_at=first).json()["unauthorised"] is False
    return report(pipeline, "second")


def _covered(cast: Cast, pipeline: APIClient) -> Any:
    ready_changelog(cast)
    check(pipeline)
    return report(pipeline, "run", status="started")


def _later_report_in_order(cast: Cast, pipeline: APIClient) -> Any:
    ready_changelog(cast)
    check(pipeline)
    start = timezone.now()
    report(pipeline, "started", status="started", started_at=start)
    return report(pipeline, "succeeded", started_at=start)


def _later_report_out_of_order(cast: Cast, pipeline: APIClient) -> Any:
    """A second success of a deployment that already succeeded (a new key, the same start)."""
    ready_changelog(cast)
    check(pipeline)
    start = timezone.now()
    report(pipeline, "started", status="started", started_at=start)
    report(pipeline, "succeeded", started_at=start)
    return report(pipeline, "succeeded-again", started_at=start, finished_at=text(timezone.now()))


def _later_report_too_late(cast: Cast, pipeline: APIClient) -> Any:
    ready_changelog(cast)
    check(pipeline)
    report(pipeline, "started", status="started", started_at=timezone.now())
    time_passes(timedelta(minutes=61))
    start = Deployment.objects.get().started_at
    return report(pipeline, "succeeded", started_at=start)


COVERAGE_RULES = {
    "a covered deployment": Case(_covered, None),
    "a later report, in order": Case(_later_report_in_order, None),
    "service: the allow decision is another service's": Case(_approved_elsewhere, "no_allow_decision"),
    "environment: the allow decision is for another environment": Case(_other_environment, "no_allow_decision"),
    "digest: the allow decision is for another digest": Case(_other_digest, "no_allow_decision"),
    "outcome: the decision denied": Case(_denied, "no_allow_decision"),
    "validity at start: started before the check": Case(_started_before_the_check, "not_valid_at_start"),
    "validity at start: started after it expired": Case(_started_after_the_decision_expired, "not_valid_at_start"),
    "validity at start: backdated into an old decision": Case(_backdated_into_an_old_decision, "reported_late"),
    "changelog state: rejected after the check": Case(_rejected_after_the_check, "changelog_not_approved"),
    "changelog state: revision superseded": Case(_revised_and_approved_again, "revision_superseded"),
    "changelog state: deployed by another deployment": Case(_deployed_by_another_deployment, "changelog_not_approved"),
    "later report: out of order": Case(_later_report_out_of_order, "out_of_order"),
    "later report: too late": Case(_later_report_too_late, "reported_late"),
}


@pytest.mark.parametrize("case", COVERAGE_RULES.values(), ids=COVERAGE_RULES.keys())
@pytest.mark.requirement("PR-02")
def test_the_coverage_rules(cast: Cast, settings: Any, case: Case) -> None:
    settings.GATE_ENVIRONMENTS = ["production", "production-eu"]
    settings.DEPLOYMENT_REPORT_WINDOW_MINUTES = 60
    settings.DEPLOYMENT_CLOCK_SKEW_SECONDS = 60

    response = case.arrange(cast, cast.pipeline.client())

    assert response.status_code == 201, response.json()
    assert response.json()["not_covered_because"] == case.not_covered_because
    assert response.json()["unauthorised"] is (case.not_covered_because is not None)
    # Covered or not, the report belongs to the payments-api change carrying its digest.
    carrying = Changelog.objects.filter(
        service=cast.payments_api, current_revision__artifact_digest=response.json()["artifact_digest"]
    )
    assert response.json()["changelog"] == (str(carrying.get().pk) if carrying.exists() else None)


# Idempotency and scope


def test_replaying_the_same_report_changes_nothing(cast: Cast) -> None:
    ready_changelog(cast)
    pipeline = cast.pipeline.client()
    start = timezone.now()
    first = report(pipeline, "run-817", digest=OTHER_DIGEST, started_at=start)
    events = AuditEvent.objects.count()

    again = report(pipeline, "run-817", digest=OTHER_DIGEST, started_at=start)

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


@pytest.mark.requirement("PR-19")
def test_a_rollback_marks_the_changelog_rolled_back(cast: Cast) -> None:
    changelog = ready_changelog(cast)
    pipeline = cast.pipeline.client()
    check(pipeline)
    start = timezone.now()
    report(pipeline, "run-819-started", status="started", started_at=start)

    report(pipeline, "run-819-rolled-back", status="rolled_back", started_at=start)

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


def test_the_api_schema_documents_the_new_codes(cast: Cast) -> None:
    schema = cast.session(cast.admin).get("/api/schema/?format=json").content.decode()

    for code in (
        "deployment_starts_in_future",
        "deployment_finishes_in_future",
        "deployment_finishes_before_start",
        "idempotency_key_reused",
        "github_delivery_replayed",
        "github_delivery_too_old",
        "github_delivery_dated_in_future",
        *(reason.value for reason in NotCovered),
    ):
        assert code in schema, code
