"""PR-08/PR-09: every hotfix opens a retrospective, whatever its tier; the retrospective owes the
tier's full approvals and a post-implementation review (PIR), normally written after the deployment;
the hotfix closes only once its tests and its review are attached (and its approvals are in)."""

import json
from typing import Any

import pytest

from approvals.models import PostImplementationReview, Retrospective
from audit.models import AuditEvent
from changelogs.models import Changelog
from tests.conftest import Cast
from tests.factories import UserFactory, changelog_make
from tests.releasegate.gate_support import approve, check, ready_changelog, report_succeeded

REVIEW = {
    "summary": "Maestro card payments failed after the fee change; the hotfix restored the old rounding. Fixed.",
    "follow_up": "Add Maestro cards to the staging journeys (PAY-003), owner: payments squad.",
}


def _deployed_hotfix(cast: Cast) -> Changelog:
    """A medium-risk hotfix (one approval is all its tier needs), approved, checked and deployed."""
    hotfix = ready_changelog(cast, kind="hotfix", risk_tier="medium")
    assert check(cast.pipeline.client()).json()["decision"] == "allow"
    assert report_succeeded(cast.pipeline.client(), hotfix, "deploy-1").status_code == 201
    hotfix.refresh_from_db()
    assert hotfix.status == "deployed"
    return hotfix


def _review(cast: Cast, hotfix: Changelog, who: Any = None, **body: str) -> Any:
    client = cast.session(who or cast.requester)
    return client.post(f"/api/v1/changelogs/{hotfix.id}/retrospective/review", {**REVIEW, **body}, format="json")


def _close(cast: Cast, hotfix: Changelog) -> Any:
    return cast.session(cast.requester).post(f"/api/v1/changelogs/{hotfix.id}/close")


@pytest.mark.requirement("PR-08")
def test_a_hotfix_whose_tier_needs_one_approval_opens_a_retrospective_too(cast: Cast) -> None:
    hotfix = ready_changelog(cast, kind="hotfix", risk_tier="medium")

    retrospective = Retrospective.objects.get(changelog=hotfix)
    assert hotfix.status == "approved"
    assert retrospective.status == "open"
    assert retrospective.approved_at is not None  # its approvals are in: it owes its review
    assert AuditEvent.objects.filter(action="retrospective:opened", target_id=str(hotfix.id)).count() == 1
    assert cast.session(UserFactory(username="approver-2")).get("/api/v1/approvals/queue").json() == []


@pytest.mark.requirement("PR-09")
@pytest.mark.requirement("PR-18")
def test_the_review_is_attached_after_the_deployment_audited_and_completes_the_retrospective(cast: Cast) -> None:
    hotfix = _deployed_hotfix(cast)

    response = _review(cast, hotfix)

    assert response.status_code == 201, response.json()
    assert response.json()["written_by"] == "requester"
    retrospective = Retrospective.objects.get(changelog=hotfix)
    assert retrospective.status == "completed"
    assert retrospective.review.summary == REVIEW["summary"]  # type: ignore[attr-defined]
    event = AuditEvent.objects.get(action="retrospective:reviewed", target_id=str(hotfix.id))
    assert json.loads(event.data)["summary"] == REVIEW["summary"]
    assert AuditEvent.objects.filter(action="retrospective:completed", target_id=str(hotfix.id)).count() == 1
    [listed] = cast.session(cast.auditor).get("/api/v1/exceptions/retrospectives").json()
    assert listed["review"]["follow_up"] == REVIEW["follow_up"]


@pytest.mark.requirement("PR-09")
def test_a_hotfix_that_never_went_out_is_reviewed_too_and_the_event_says_so(cast: Cast) -> None:
    """Its retrospective is owed all the same; without a review it would stay open, then overdue,
    and block the service for good."""
    hotfix = ready_changelog(cast, kind="hotfix", risk_tier="medium")

    response = _review(cast, hotfix, summary="Not deployed: the incident was resolved by the card scheme.")

    assert response.status_code == 201, response.json()
    assert Retrospective.objects.get(changelog=hotfix).status == "completed"
    event = AuditEvent.objects.get(action="retrospective:reviewed", target_id=str(hotfix.id))
    assert json.loads(event.data)["status"] == "approved"
    assert (_close(cast, hotfix).status_code, Changelog.objects.get(pk=hotfix.pk).status) == (409, "approved")


def test_a_change_without_a_retrospective_takes_no_review(cast: Cast) -> None:
    train = ready_changelog(cast)

    response = _review(cast, train)

    assert (response.status_code, response.json()["code"]) == (409, "no_retrospective")
    assert not PostImplementationReview.objects.exists()


def test_a_review_is_written_by_a_person_once_and_says_something(cast: Cast) -> None:
    hotfix = _deployed_hotfix(cast)

    by_pipeline = cast.pipeline.client().post(
        f"/api/v1/changelogs/{hotfix.id}/retrospective/review", REVIEW, format="json"
    )
    blank = _review(cast, hotfix, summary="  ")
    first = _review(cast, hotfix)
    again = _review(cast, hotfix)

    assert (by_pipeline.status_code, by_pipeline.json()["code"]) == (403, "reviewer_not_a_person")
    assert blank.status_code == 400
    assert first.status_code == 201
    assert (again.status_code, again.json()["code"]) == (409, "review_exists")
    assert PostImplementationReview.objects.count() == 1


@pytest.mark.requirement("PR-09")
def test_a_deployed_hotfix_closes_only_once_its_review_is_attached(cast: Cast) -> None:
    hotfix = _deployed_hotfix(cast)
    events = AuditEvent.objects.count()

    refused = _close(cast, hotfix)

    assert refused.status_code == 409
    assert refused.json()["code"] == "hotfix_not_closable"
    assert set(refused.json()["fields"]) == {"post_implementation_review"}
    assert Changelog.objects.get(pk=hotfix.pk).status == "deployed"
    assert AuditEvent.objects.count() == events

    assert _review(cast, hotfix).status_code == 201
    closed = _close(cast, hotfix)

    assert closed.status_code == 200, closed.json()
    assert closed.json()["status"] == "closed"
    event = AuditEvent.objects.filter(action="changelog:status_changed", target_id=str(hotfix.id)).latest("id")
    assert json.loads(event.data) == {"from": "deployed", "to": "closed", "cause": "changelog:closed"}
    assert [reason["code"] for reason in check(cast.pipeline.client()).json()["reasons"]] == ["changelog_closed"]


@pytest.mark.requirement("PR-09")
def test_a_hotfix_without_tests_or_full_approvals_cannot_close(cast: Cast) -> None:
    hotfix = changelog_make(service=cast.payments_api, by=cast.requester, kind="hotfix", submitted=True)
    approve(cast, hotfix)
    Changelog.objects.filter(pk=hotfix.pk).update(status="deployed")  # it went out without tests
    Retrospective.objects.filter(changelog=hotfix).update(approved_at=None)

    refused = _close(cast, hotfix)

    assert refused.status_code == 409
    assert set(refused.json()["fields"]) == {"tests", "approvals", "post_implementation_review"}
    assert Changelog.objects.get(pk=hotfix.pk).status == "deployed"


def test_a_train_closes_once_it_went_out_and_not_before(cast: Cast) -> None:
    train = ready_changelog(cast)

    early = _close(cast, train)
    Changelog.objects.filter(pk=train.pk).update(status="deployed")
    closed = _close(cast, train)

    assert (early.status_code, early.json()["code"]) == (409, "status_change_not_allowed")
    assert closed.status_code == 200
    assert Changelog.objects.get(pk=train.pk).status == "closed"
