"""Services that decide with authority check step-up and lock what they decide on themselves:
called directly, past every view and admin form, they still refuse and still wait."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection, connections, transaction
from django.utils import timezone

from approvals.models import Approval, AuthorityGrant, GrantStatus
from approvals.services import Seen, approval_decide, authority_grant_request, grant_confirm
from audit.models import AuditEvent
from changelogs.models import Changelog
from changelogs.selectors import changelog_lock
from core.actors import StepUp
from core.errors import PermissionDenied
from releasegate.freezes import freeze_create, freeze_override_approve
from releasegate.models import FreezeOverride
from releasegate.services import group_save
from tests.conftest import Cast
from tests.factories import UserFactory, changelog_make, seen_of


def _seen(changelog: Changelog) -> Seen:
    return Seen(**seen_of(changelog))


def test_a_decision_without_step_up_is_refused_and_nothing_is_recorded(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)
    events = AuditEvent.objects.count()

    with pytest.raises(PermissionDenied) as refused:
        approval_decide(
            acting_user=cast.approver,
            changelog=changelog,
            decision="approved",
            reason="",
            seen=_seen(changelog),
            step_up=None,
        )

    assert refused.value.code == "step_up_required"
    assert not Approval.objects.exists()
    assert AuditEvent.objects.count() == events


def test_a_decision_with_someone_elses_or_an_old_step_up_is_refused(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)
    borrowed = StepUp.of(cast.other_approver)
    stale = StepUp.of(cast.approver, at=datetime.now(UTC) - timedelta(minutes=6))

    for step_up in (borrowed, stale):
        with pytest.raises(PermissionDenied) as refused:
            approval_decide(
                acting_user=cast.approver,
                changelog=changelog,
                decision="approved",
                reason="",
                seen=_seen(changelog),
                step_up=step_up,
            )
        assert refused.value.code == "step_up_required"
    assert not Approval.objects.exists()


def test_confirming_an_authority_without_step_up_is_refused(cast: Cast) -> None:
    second_admin = UserFactory(username="second-admin", is_superuser=True)
    grant = authority_grant_request(
        acting_user=cast.admin,
        domain=cast.payments,
        authority="sign_off",
        user=cast.requester,
        reason="Deputy",
        step_up=StepUp.of(cast.admin),
    )

    with pytest.raises(PermissionDenied) as refused:
        grant_confirm(acting_user=second_admin, grant=grant, step_up=None)

    assert refused.value.code == "step_up_required"
    assert AuthorityGrant.objects.get(pk=grant.pk).status == GrantStatus.PENDING


def test_a_freeze_override_without_step_up_is_refused(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)
    now = timezone.now()
    freeze = freeze_create(
        acting_user=cast.admin,
        domain=None,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=1),
        reason="Year end",
    )

    with pytest.raises(PermissionDenied) as refused:
        freeze_override_approve(
            acting_user=cast.approver, freeze=freeze, changelog=changelog, reason="Urgent", step_up=None
        )

    assert refused.value.code == "step_up_required"
    assert not FreezeOverride.objects.exists()


def test_changing_what_a_group_may_do_without_step_up_is_refused(cast: Cast) -> None:
    group = Group.objects.create(name="operators")

    with pytest.raises(PermissionDenied) as refused:
        group_save(
            acting_user=cast.admin,
            group=group,
            permissions=Permission.objects.filter(codename="view_changelog"),
            step_up=None,
        )

    assert refused.value.code == "step_up_required"
    assert not Group.objects.get(pk=group.pk).permissions.exists()


@pytest.mark.serial
@pytest.mark.django_db(transaction=True)
def test_a_decision_waits_for_an_edit_that_holds_the_changelog(cast: Cast) -> None:
    """The service takes the changelog's lock itself: a decision that arrives while another
    transaction holds it waits for that one to end instead of deciding beside it."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    changelog = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)
    seen = _seen(changelog)
    done = threading.Event()

    def decide() -> None:
        try:
            with transaction.atomic():
                approval_decide(
                    acting_user=cast.approver,
                    changelog=changelog,
                    decision="approved",
                    reason="",
                    seen=seen,
                    step_up=StepUp.of(cast.approver),
                )
        finally:
            done.set()
            connections.close_all()

    with transaction.atomic():
        changelog_lock(changelog=changelog)
        deciding = threading.Thread(target=decide)
        deciding.start()
        assert not done.wait(timeout=1.0)  # waiting on the lock, not deciding beside the holder
        assert not Approval.objects.exists()
    deciding.join(timeout=10)

    assert done.is_set()
    assert Approval.objects.filter(changelog=changelog, approver=cast.approver).count() == 1
