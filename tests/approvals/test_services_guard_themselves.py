"""Services that decide with authority check step-up, check who may act, check their input and
lock what they decide on themselves: called directly, past every view and admin form, they
still refuse and still wait."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from guardian.shortcuts import remove_perm

from approvals.apis import ReviewInput
from approvals.models import Approval, AuthorityGrant, GrantStatus, PostImplementationReview
from approvals.services import (
    Seen,
    approval_decide,
    changelog_close,
    changelog_submit_for_approval,
    grant_confirm,
    retrospective_review_attach,
    review_validate,
)
from audit.models import AuditEvent
from changelogs.models import Changelog, ChangelogStatus
from changelogs.selectors import MANAGE_CHANGELOGS, changelog_lock
from changelogs.services import changelog_create
from core.actors import StepUp
from core.errors import ApplicationError, InvalidInput, PermissionDenied
from releasegate.errors import flatten_validation_errors
from releasegate.models import User
from releasegate.services import group_save
from tests.approvals.test_hotfix_review import REVIEW
from tests.conftest import Cast
from tests.factories import UserFactory, authority_asked, changelog_content, changelog_make, seen_of
from tests.locks import run_against_held_lock
from tests.releasegate.gate_support import check, ready_changelog, report_succeeded


def _approve(cast: Cast, changelog: Changelog, step_up: StepUp | None) -> None:
    approval_decide(
        acting_user=cast.approver,
        changelog=changelog,
        decision="approved",
        reason="",
        seen=Seen(**seen_of(changelog)),
        step_up=step_up,
    )


def test_a_decision_without_step_up_is_refused_and_nothing_is_recorded(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)
    events = AuditEvent.objects.count()

    with pytest.raises(PermissionDenied) as refused:
        _approve(cast, changelog, None)

    assert refused.value.code == "step_up_required"
    assert not Approval.objects.exists()
    assert AuditEvent.objects.count() == events


def test_a_decision_with_someone_elses_or_an_old_step_up_is_refused(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)
    borrowed = StepUp.of(cast.other_approver)
    stale = StepUp.of(cast.approver, at=datetime.now(UTC) - timedelta(minutes=6))

    for step_up in (borrowed, stale):
        with pytest.raises(PermissionDenied) as refused:
            _approve(cast, changelog, step_up)
        assert refused.value.code == "step_up_required"
    assert not Approval.objects.exists()


def test_confirming_an_authority_without_step_up_is_refused(cast: Cast) -> None:
    grant = authority_asked(by=cast.admin, domain=cast.payments, user=cast.requester)

    with pytest.raises(PermissionDenied) as refused:
        grant_confirm(acting_user=UserFactory(username="second-admin", is_superuser=True), grant=grant, step_up=None)

    assert refused.value.code == "step_up_required"
    assert AuthorityGrant.objects.get(pk=grant.pk).status == GrantStatus.PENDING


def test_changing_what_a_group_may_do_without_step_up_is_refused(cast: Cast) -> None:
    group = Group.objects.create(name="operators")
    permissions = Permission.objects.filter(codename="view_changelog")

    with pytest.raises(PermissionDenied) as refused:
        group_save(acting_user=cast.admin, group=group, permissions=permissions, step_up=None)

    assert refused.value.code == "step_up_required"
    assert not Group.objects.get(pk=group.pk).permissions.exists()


@pytest.mark.serial
@pytest.mark.django_db(transaction=True)
def test_a_decision_waits_for_an_edit_that_holds_the_changelog(cast: Cast) -> None:
    """The service takes the changelog's lock itself: a decision that arrives while another
    transaction holds it waits for that one to end instead of deciding beside it."""
    changelog = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)

    def nothing_decided_yet() -> None:
        assert not Approval.objects.exists()

    raised = run_against_held_lock(
        hold=lambda: changelog_lock(changelog=changelog),
        act=lambda: _approve(cast, changelog, StepUp.of(cast.approver)),
        then=nothing_decided_yet,
    )

    assert raised == []
    assert Approval.objects.filter(changelog=changelog, approver=cast.approver).count() == 1


def _status(changelog: Changelog) -> str:
    return Changelog.objects.get(pk=changelog.pk).status


def _refused(action: Callable[[], Any]) -> ApplicationError:
    """What ``action`` raised; the test then checks that nothing was recorded."""
    events = AuditEvent.objects.count()
    with pytest.raises(ApplicationError) as refused:
        action()
    assert AuditEvent.objects.count() == events
    return refused.value


def _deployed(cast: Cast) -> Changelog:
    """A train approved, checked and deployed through the API: one that may close."""
    changelog = ready_changelog(cast)
    assert check(cast.pipeline.client()).json()["decision"] == "allow"
    assert report_succeeded(cast.pipeline.client(), changelog, "deploy-1").status_code == 201
    assert _status(changelog) == ChangelogStatus.DEPLOYED
    return changelog


def _hotfix_to_review(cast: Cast) -> Changelog:
    """A hotfix that went out on its first approval: its retrospective waits for a review."""
    return ready_changelog(cast, kind="hotfix", risk_tier="medium")


def _draft(cast: Cast) -> Changelog:
    return changelog_make(service=cast.payments_api, by=cast.requester)


def _submitted(cast: Cast) -> Changelog:
    return changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)


@dataclass(frozen=True)
class Action:
    """A change to a changelog that only who manages its service may make, and a changelog it
    can be made on."""

    on: Callable[[Cast], Changelog]
    act: Callable[[User, Changelog], Any]


ACTIONS = {
    "submit": Action(on=_draft, act=lambda user, it: changelog_submit_for_approval(acting_user=user, changelog=it)),
    "close": Action(on=_deployed, act=lambda user, it: changelog_close(acting_user=user, changelog=it)),
    "review": Action(
        on=_hotfix_to_review,
        act=lambda user, it: retrospective_review_attach(acting_user=user, changelog=it, review=REVIEW),
    ),
}


def _as_it_was(changelog: Changelog, status: str) -> None:
    assert _status(changelog) == status
    assert not PostImplementationReview.objects.exists()


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("reader", ["approver", "auditor"])
def test_a_reader_who_may_see_the_changelog_may_not_change_it(cast: Cast, action: str, reader: str) -> None:
    changelog = ACTIONS[action].on(cast)
    status = _status(changelog)

    refused = _refused(lambda: ACTIONS[action].act(getattr(cast, reader), changelog))

    assert (refused.status_code, refused.code) == (403, "changelog_read_only")
    _as_it_was(changelog, status)


@pytest.mark.parametrize(
    ("action", "on", "code"),
    [("submit", _submitted, "changelog_not_draft"), ("close", _draft, "status_change_not_allowed")],
)
def test_a_change_its_state_does_not_allow_is_a_conflict(
    cast: Cast, action: str, on: Callable[[Cast], Changelog], code: str
) -> None:
    changelog = on(cast)
    status = _status(changelog)

    refused = _refused(lambda: ACTIONS[action].act(cast.requester, changelog))

    assert (refused.status_code, refused.code) == (409, code)
    _as_it_was(changelog, status)


# The post-implementation review


def test_a_reader_is_refused_before_their_input_is_judged(cast: Cast) -> None:
    """As the API always answered: 403 for who may not act, whatever they sent."""
    hotfix = _hotfix_to_review(cast)

    refused = _refused(lambda: retrospective_review_attach(acting_user=cast.approver, changelog=hotfix, review=[]))

    assert refused.code == "changelog_read_only"


@pytest.mark.parametrize(
    ("review", "fields"),
    [
        ({"follow_up": "Later."}, {"summary": [{"code": "required", "message": "This field is required."}]}),
        ({"summary": "   "}, {"summary": [{"code": "blank", "message": "This field may not be blank."}]}),
        (
            {"summary": "x" * 20001},
            {"summary": [{"code": "max_length", "message": "Ensure this field has no more than 20000 characters."}]},
        ),
        (
            {**REVIEW, "written_by": "someone else"},
            {"written_by": [{"code": "unknown_field", "message": "This field is not known."}]},
        ),
        (
            ["a summary"],
            {"": [{"code": "invalid", "message": "Invalid data. Expected a dictionary, but got list."}]},
        ),
    ],
)
def test_a_review_that_is_not_valid_is_refused_field_by_field_and_nothing_is_recorded(
    cast: Cast, review: Any, fields: dict[str, Any]
) -> None:
    hotfix = _hotfix_to_review(cast)

    refused = _refused(lambda: retrospective_review_attach(acting_user=cast.requester, changelog=hotfix, review=review))

    assert isinstance(refused, InvalidInput)
    assert (refused.code, refused.fields) == ("invalid_input", fields)
    assert not PostImplementationReview.objects.exists()


_ODD = [None, "", "  ", " Trimmed. ", 5, 1.5, True, [], {}, "x" * 20000, "x" * 20001, "a\x00b", "\ud800", "ok"]
_MISSING = object()


def _bodies() -> list[Any]:
    bodies: list[Any] = [None, [], "summary", 3, True, {}, {"summary": "ok", "other": 1, "another": 2}]
    for summary in [*_ODD, _MISSING]:
        for follow_up in [*_ODD, _MISSING]:
            given = {"summary": summary, "follow_up": follow_up}
            bodies.append({name: value for name, value in given.items() if value is not _MISSING})
    return bodies


def test_the_service_judges_a_review_as_the_api_s_input_describes_it() -> None:
    """``ReviewInput`` is what the schema says; the service's rules must answer the same, error for
    error, and give the same values back."""
    for body in _bodies():
        described = ReviewInput(data=body)
        try:
            answer: Any = review_validate(body)
        except InvalidInput as refused:
            answer = refused.fields
        if described.is_valid():
            assert answer == dict(described.validated_data), body
        else:
            # In the same order too: the message names the first.
            assert list(answer.items()) == list(flatten_validation_errors(described.errors).items()), body


# A new changelog


def test_a_new_changelog_of_no_known_kind_is_refused_and_nothing_is_recorded(cast: Cast) -> None:
    refused = _refused(
        lambda: changelog_create(
            acting_user=cast.requester, service=cast.payments_api, kind="bugfix", content=changelog_content()
        )
    )

    assert isinstance(refused, InvalidInput)
    assert (refused.code, refused.fields) == (
        "invalid_kind",
        {"kind": [{"code": "invalid_kind", "message": "Must be 'train' or 'hotfix'."}]},
    )
    assert not Changelog.objects.exists()


# Each waits for the changelog and decides on who may act once it has it


def _no_longer_manages(cast: Cast) -> None:
    """Meanwhile, in the transaction holding the changelog, the requester loses the service."""
    remove_perm(MANAGE_CHANGELOGS, cast.requester, cast.payments_api)


def _fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)  # no permissions cached from before the wait


@pytest.mark.serial
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ACTIONS)
def test_each_waits_for_the_changelog_and_checks_who_may_act_under_its_lock(cast: Cast, action: str) -> None:
    """The service takes the changelog's lock itself, then judges who may act: a requester who
    lost the service while it waited is refused (checked before the lock, they would not be)."""
    changelog = ACTIONS[action].on(cast)
    status = _status(changelog)

    raised = run_against_held_lock(
        hold=lambda: changelog_lock(changelog=changelog),
        act=lambda: ACTIONS[action].act(_fresh(cast.requester), changelog),
        then=lambda: _no_longer_manages(cast),
    )

    assert [getattr(error, "code", error) for error in raised] == ["changelog_read_only"]
    _as_it_was(changelog, status)
