"""Services that decide with authority check step-up and lock what they decide on themselves:
called directly, past every view and admin form, they still refuse and still wait."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group, Permission

from approvals.models import Approval, AuthorityGrant, GrantStatus
from approvals.services import Seen, approval_decide, grant_confirm
from audit.models import AuditEvent
from changelogs.models import Changelog
from changelogs.selectors import changelog_lock
from core.actors import StepUp
from core.errors import PermissionDenied
from releasegate.services import group_save
from tests.conftest import Cast
from tests.factories import UserFactory, authority_asked, changelog_make, seen_of
from tests.locks import run_against_held_lock


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
