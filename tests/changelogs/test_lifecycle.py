"""A changelog's status has one owner: changelogs.services.changelog_status_change, which
locks the row, follows the lifecycle table and records the old and new status."""

import json

import pytest

from audit.models import AuditEvent
from changelogs import services
from changelogs.errors import ChangelogError
from changelogs.lifecycle import CLOSED, TRANSITIONS, Status, may_change
from changelogs.models import Changelog, ChangelogStatus
from core.errors import Conflict
from tests.conftest import Cast
from tests.factories import changelog_make

ALLOWED = [(old, new) for old, news in TRANSITIONS.items() for new in sorted(news)]
REFUSED = [(old, new) for old in Status for new in Status if new != old and new not in TRANSITIONS[old]]


def test_the_lifecycle_knows_every_status_and_closes_deployed_changes() -> None:
    assert set(TRANSITIONS) == set(Status) == set(ChangelogStatus.values)
    assert {Status.DEPLOYED, Status.ROLLED_BACK, Status.CLOSED} == CLOSED
    assert TRANSITIONS[Status.ROLLED_BACK] == {Status.CLOSED}
    assert not TRANSITIONS[Status.CLOSED]
    assert not any(may_change(closed, Status.DRAFT) for closed in CLOSED)


@pytest.mark.parametrize(("old", "new"), REFUSED)
def test_a_change_the_lifecycle_does_not_allow_is_refused_and_recorded_nowhere(
    cast: Cast, old: Status, new: Status
) -> None:
    changelog = changelog_make(service=cast.payments_api)
    Changelog.objects.filter(pk=changelog.pk).update(status=old)
    events = AuditEvent.objects.count()

    with pytest.raises(Conflict) as refused:
        services.changelog_status_change(acting_user=cast.admin, changelog=changelog, status=new, cause="test")

    assert refused.value.code == ChangelogError.STATUS_CHANGE_NOT_ALLOWED
    assert Changelog.objects.get(pk=changelog.pk).status == old
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize(("old", "new"), ALLOWED)
def test_an_allowed_change_is_made_under_lock_with_its_old_and_new_status_recorded(
    cast: Cast, old: Status, new: Status
) -> None:
    changelog = changelog_make(service=cast.payments_api)
    Changelog.objects.filter(pk=changelog.pk).update(status=old)
    stale = Changelog.objects.get(pk=changelog.pk)
    Changelog.objects.filter(pk=changelog.pk).update(status=old)

    changed = services.changelog_status_change(acting_user=cast.admin, changelog=stale, status=new, cause="cause:x")

    assert changed
    assert Changelog.objects.get(pk=changelog.pk).status == new == stale.status
    event = AuditEvent.objects.filter(action="changelog:status_changed").latest("id")
    assert json.loads(event.data) == {"from": old, "to": new, "cause": "cause:x"}
    assert event.target_id == str(changelog.pk)


def test_the_same_status_again_changes_and_records_nothing(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api)
    events = AuditEvent.objects.count()

    assert not services.changelog_status_change(
        acting_user=cast.admin, changelog=changelog, status=Status.DRAFT, cause="test"
    )
    assert AuditEvent.objects.count() == events


def test_the_status_under_the_lock_decides_not_the_callers_copy(cast: Cast) -> None:
    """A caller holding a stale copy (submitted) of a changelog that is deployed meanwhile
    cannot move it back."""
    changelog = changelog_make(service=cast.payments_api)
    Changelog.objects.filter(pk=changelog.pk).update(status=Status.DEPLOYED)
    changelog.status = Status.APPROVED

    with pytest.raises(Conflict):
        services.changelog_status_change(
            acting_user=cast.admin, changelog=changelog, status=Status.SUBMITTED, cause="test"
        )
    assert changelog.status == Status.DEPLOYED


def test_every_changelog_service_decides_on_the_state_under_its_own_lock_not_the_callers_copy(cast: Cast) -> None:
    """Views used to lock the row for the services they called; a caller holding a copy read
    before the change was deployed (a script, a task, a future view) could still edit it. The
    services lock it themselves now and refuse on what the row says."""
    changelog = changelog_make(service=cast.payments_api)
    stale = Changelog.objects.get(pk=changelog.pk)
    Changelog.objects.filter(pk=changelog.pk).update(status=Status.DEPLOYED)
    assert stale.status == Status.DRAFT
    assert stale.current_revision is not None
    content = dict(stale.current_revision.content)

    with pytest.raises(Conflict) as refused:
        services.changelog_edit(acting_user=cast.requester, changelog=stale, changes=content)

    assert refused.value.code == ChangelogError.CHANGELOG_CLOSED
    assert stale.status == Status.DEPLOYED
