"""The gate end to end through HTTP: allow for a complete approved change, each denial from a
minimal case, every decision stored and audited with who asked."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from approvals.models import AuthorityGrant
from approvals.services import grant_revoke, retrospectives_mark_overdue
from audit.models import AuditEvent
from changelogs.services import policy_create
from core.actors import StepUp
from releasegate.freezes import freeze_create, freeze_override_approve
from releasegate.models import GateDecision
from tests.clock import time_passes
from tests.conftest import Cast
from tests.factories import (
    DIGEST,
    OTHER_DIGEST,
    authority_forced,
    authority_give,
    changelog_make,
    seen_of,
    unsigned_approvals_count,
)
from tests.releasegate.gate_support import PASSWORD, approve, check, complete_evidence, ready_changelog, year_end_freeze


def codes(response: Any) -> list[str]:
    assert response.status_code == 200, response.json()
    return [reason["code"] for reason in response.json()["reasons"]]


def test_a_complete_approved_changelog_is_allowed(cast: Cast) -> None:
    changelog = ready_changelog(cast)

    response = check(cast.pipeline.client())

    body = response.json()
    assert response.status_code == 200
    assert body["decision"] == "allow"
    assert body["changelog"] == str(changelog.id)
    assert body["revision"] == 1
    assert body["policy"] == "default@v0"
    assert body["reasons"] == [{"code": "allowed", "message": "Every check passed."}]
    decision = GateDecision.objects.get(pk=body["decision_id"])
    assert decision.requested_by == cast.pipeline.account
    assert decision.token_prefix == cast.pipeline.token[:12]
    event = AuditEvent.objects.get(action="gate:allowed")
    assert event.actor == "service_account:svc-payments-ci"
    assert event.target_id == body["decision_id"]


@pytest.mark.requirement("PR-01", "PR-02")
def test_a_digest_nobody_submitted_is_denied(cast: Cast) -> None:
    ready_changelog(cast)

    assert codes(check(cast.pipeline.client(), OTHER_DIGEST)) == ["no_changelog"]
    assert AuditEvent.objects.filter(action="gate:denied").count() == 1


@pytest.mark.requirement("PR-01")
def test_a_draft_is_denied(cast: Cast) -> None:
    changelog_make(service=cast.payments_api)

    assert "changelog_not_submitted" in codes(check(cast.pipeline.client()))


@pytest.mark.requirement("PR-01")
def test_missing_evidence_is_denied_with_the_readiness_findings(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    cast.pipeline.client().post(f"/api/v1/changelogs/{changelog.id}/submit")
    approve(cast, changelog)

    found = codes(check(cast.pipeline.client()))

    assert found.count("evidence_missing") == 3
    assert "approvals_missing" not in found


@pytest.mark.requirement("PR-01")
def test_a_failed_journey_is_denied(cast: Cast) -> None:
    from tests.factories import JourneyFactory

    JourneyFactory(journey_id="PAY-001", domain=cast.payments, critical=True)
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    complete_evidence(cast.pipeline.client(), changelog, {"PAY-001": "failed"})
    cast.pipeline.client().post(f"/api/v1/changelogs/{changelog.id}/submit")
    approve(cast, changelog)

    assert "journey_failed" in codes(check(cast.pipeline.client()))


@pytest.mark.requirement("PR-01")
def test_a_change_without_approval_is_denied(cast: Cast) -> None:
    ready_changelog(cast, approved=False)

    assert codes(check(cast.pipeline.client())) == ["approvals_missing"]


def test_a_rejected_change_is_denied(cast: Cast) -> None:
    changelog = ready_changelog(cast, approved=False)
    cast.session(cast.approver).post(
        f"/api/v1/changelogs/{changelog.id}/approvals/",
        {"decision": "rejected", "reason": "No", "password": PASSWORD, **seen_of(changelog)},
        format="json",
    )

    assert codes(check(cast.pipeline.client())) == ["changelog_rejected"]


@pytest.mark.requirement("PR-03")
def test_an_approval_of_earlier_content_is_stale(cast: Cast) -> None:
    changelog = ready_changelog(cast)
    pipeline = cast.pipeline.client()
    pipeline.patch(f"/api/v1/changelogs/{changelog.id}/", {"reason": "Edited after approval"}, format="json")
    pipeline.post(f"/api/v1/changelogs/{changelog.id}/submit")

    assert codes(check(pipeline)) == ["approvals_missing", "approval_stale"]


def test_an_expired_approval_is_denied(cast: Cast) -> None:
    ready_changelog(cast)

    time_passes(timedelta(days=8))

    assert codes(check(cast.pipeline.client())) == ["approvals_missing", "approval_expired"]


def test_an_approval_by_someone_who_lost_the_authority_is_denied(cast: Cast) -> None:
    ready_changelog(cast)
    [grant] = AuthorityGrant.objects.filter(user=cast.approver, status="active")
    grant_revoke(acting_user=cast.admin, grant=grant, step_up=StepUp.of(cast.admin))

    assert codes(check(cast.pipeline.client())) == ["approvals_missing", "approval_without_authority"]


@pytest.mark.requirement("PR-04")
def test_a_self_given_approval_is_denied_even_if_it_got_into_the_database(cast: Cast) -> None:
    """The service refuses self-approval at the door; the gate counts again, so a row written
    behind the service's back (a data fix, a bug) still does not open the gate."""
    from approvals.models import Approval

    changelog = ready_changelog(cast, approved=False)
    authority_give(domain=cast.payments, user=cast.requester)
    revision = changelog.current_revision
    Approval.objects.create(
        changelog=changelog,
        revision=revision,
        content_hash=revision.content_hash,
        decision="approved",  # type: ignore[union-attr]
        approver=cast.pipeline.account,
        authorities=["sign_off"],
        decided_at=timezone.now(),
        expires_at=timezone.now() + timedelta(days=7),
    )
    authority_forced(domain=cast.payments, user=cast.pipeline.account)

    assert codes(check(cast.pipeline.client())) == ["approvals_missing", "approval_self_given"]


@pytest.mark.requirement("PR-09")
def test_an_overdue_hotfix_retrospective_blocks_the_service(cast: Cast) -> None:
    unsigned_approvals_count(cast.payments)
    hotfix = ready_changelog(cast, kind="hotfix", risk_tier="high")
    assert check(cast.pipeline.client()).json()["decision"] == "allow"  # one approval clears a hotfix

    time_passes(timedelta(hours=25))
    retrospectives_mark_overdue()
    found = codes(check(cast.pipeline.client()))

    assert found == ["retrospective_overdue"]
    assert hotfix.kind == "hotfix"


def test_an_active_freeze_denies_unless_overridden(cast: Cast) -> None:
    changelog = ready_changelog(cast)
    freeze = year_end_freeze(cast)

    assert codes(check(cast.pipeline.client())) == ["freeze_active"]
    freeze_override_approve(
        acting_user=cast.approver,
        freeze=freeze,
        changelog=changelog,
        reason="Fixes a fee bug",
        step_up=StepUp.of(cast.approver),
    )
    assert codes(check(cast.pipeline.client())) == ["allowed"]
    assert AuditEvent.objects.filter(action="freeze:overridden", actor="user:approver").count() == 1


def test_a_freeze_of_another_domain_does_not_apply(cast: Cast) -> None:
    ready_changelog(cast)
    now = timezone.now()
    freeze_create(
        acting_user=cast.admin,
        domain=cast.transfers,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
        reason="Transfers migration",
    )

    assert codes(check(cast.pipeline.client())) == ["allowed"]


def test_asking_about_another_teams_service_is_refused(cast: Cast) -> None:
    response = check(cast.other_pipeline.client())

    assert response.status_code == 400
    assert response.json()["code"] == "unknown_service"
    assert not GateDecision.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"artifact_digest": "sha256:xyz"}, "artifact_digest"),
        ({"environment": "staging"}, "environment"),
    ],
)
def test_a_malformed_question_is_refused(cast: Cast, body: dict[str, str], field: str) -> None:
    response = cast.pipeline.client().post(
        "/api/v1/gate/check", {"service": "payments-api", "artifact_digest": DIGEST, **body}, format="json"
    )

    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_anonymous_callers_get_no_answer(cast: Cast) -> None:
    from rest_framework.test import APIClient

    assert check(APIClient()).status_code == 401


def test_a_changelog_already_deployed_is_closed(cast: Cast) -> None:
    ready_changelog(cast)
    pipeline = cast.pipeline.client()
    check(pipeline)
    pipeline.post(
        "/api/v1/deployments/",
        {
            "idempotency_key": "run-9",
            "service": "payments-api",
            "environment": "production",
            "artifact_digest": DIGEST,
            "status": "succeeded",
            "started_at": timezone.now().isoformat(),
        },
        format="json",
    )

    assert codes(check(pipeline)) == ["changelog_closed"]


def last_tuesday() -> dict[str, str]:
    today = timezone.now().replace(hour=9, minute=0, second=0, microsecond=0)
    tuesday = today - timedelta(days=(today.weekday() - 1) % 7 or 7)
    return {"start": f"{tuesday:%Y-%m-%dT%H:%M:%SZ}", "end": f"{tuesday + timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}"}


def test_a_change_planned_for_last_tuesday_is_denied_today(cast: Cast) -> None:
    """Seen: the planned window was never checked; a change planned for last Tuesday was allowed."""
    ready_changelog(cast, planned_window=last_tuesday())

    response = check(cast.pipeline.client())

    assert codes(response) == ["outside_planned_window"]
    assert "after its window" in response.json()["reasons"][0]["message"]
    assert GateDecision.objects.get().outcome == "deny"


def test_a_change_planned_for_next_week_is_denied_now(cast: Cast) -> None:
    start = timezone.now() + timedelta(days=7)
    ready_changelog(
        cast,
        planned_window={
            "start": f"{start:%Y-%m-%dT%H:%M:%SZ}",
            "end": f"{start + timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}",
        },
    )

    assert codes(check(cast.pipeline.client())) == ["outside_planned_window"]


def test_the_policy_says_how_late_a_change_may_still_go(cast: Cast) -> None:
    end = timezone.now() - timedelta(minutes=30)
    ready_changelog(
        cast,
        planned_window={"start": f"{end - timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}", "end": f"{end:%Y-%m-%dT%H:%M:%SZ}"},
    )
    client = cast.pipeline.client()
    assert codes(check(client)) == ["outside_planned_window"]

    policy_create(
        acting_user=cast.admin, domain=cast.payments, rules={"planned_window_grace_minutes": 60}, reason="Late trains"
    )

    assert codes(check(client)) == ["allowed"]
