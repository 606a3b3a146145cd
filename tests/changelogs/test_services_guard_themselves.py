"""The changelog services check what they are given and lock what they decide on themselves:
called directly, past every view, they refuse bad content, unknown fields and readers, and
they wait for a transaction that holds the changelog."""

from collections.abc import Callable
from typing import Any

import pytest
from guardian.shortcuts import remove_perm

from audit.models import AuditEvent
from changelogs.models import Changelog, ChangelogRevision, ChangelogStatus, Evidence
from changelogs.selectors import MANAGE_CHANGELOGS, changelog_lock
from changelogs.services import changelog_create, changelog_edit, evidence_add, evidence_detach
from core.errors import InvalidInput, PermissionDenied
from releasegate.models import User
from tests.changelogs.evidence_files import sarif_clean
from tests.conftest import Cast
from tests.factories import changelog_content, changelog_make
from tests.locks import run_against_held_lock


def _unchanged(changelog: Changelog, events: int) -> None:
    revision = ChangelogRevision.objects.get(changelog=changelog)
    assert revision.content["reason"] == changelog_content()["reason"]
    assert AuditEvent.objects.count() == events


def test_an_edit_with_bad_content_is_refused_field_by_field_and_nothing_is_recorded(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.requester)
    events = AuditEvent.objects.count()

    with pytest.raises(InvalidInput) as refused:
        changelog_edit(
            acting_user=cast.requester,
            changelog=changelog,
            changes={"reason": "", "deploy_steps": [{"description": "x" * 2001}], "no_data_changes": "perhaps"},
        )

    assert refused.value.code == "invalid_input"
    assert refused.value.message == "The input is not valid: Ensure this field has no more than 2000 characters."
    assert refused.value.fields == {
        "deploy_steps.0.description": [
            {"code": "max_length", "message": "Ensure this field has no more than 2000 characters."}
        ],
        "no_data_changes": [{"code": "invalid", "message": "Must be a valid boolean."}],
        "reason": [{"code": "blank", "message": "This field may not be blank."}],
    }
    _unchanged(changelog, events)


def test_an_edit_that_breaks_a_rule_of_the_whole_content_is_refused(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.requester)
    events = AuditEvent.objects.count()

    with pytest.raises(InvalidInput) as refused:
        changelog_edit(acting_user=cast.requester, changelog=changelog, changes={"no_data_changes": False})

    assert list(refused.value.fields) == ["data_changes"]
    assert refused.value.fields["data_changes"][0]["code"] == "data_changes_undeclared"
    _unchanged(changelog, events)


def test_an_edit_naming_a_field_the_content_does_not_have_is_refused(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.requester)
    events = AuditEvent.objects.count()

    with pytest.raises(InvalidInput) as refused:
        changelog_edit(acting_user=cast.requester, changelog=changelog, changes={"reason": "x", "content_hash": "y"})

    assert refused.value.fields == {"content_hash": [{"code": "unknown_field", "message": "This field is not known."}]}
    _unchanged(changelog, events)


def test_an_approver_who_may_read_the_changelog_may_not_edit_it(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.requester)
    events = AuditEvent.objects.count()

    with pytest.raises(PermissionDenied) as refused:
        changelog_edit(acting_user=cast.approver, changelog=changelog, changes={"reason": "Mine now."})

    assert refused.value.code == "changelog_read_only"
    _unchanged(changelog, events)


def test_a_new_changelog_with_bad_content_is_refused_and_nothing_is_recorded(cast: Cast) -> None:
    events = AuditEvent.objects.count()

    with pytest.raises(InvalidInput) as refused:
        changelog_create(
            acting_user=cast.requester,
            service=cast.payments_api,
            kind="train",
            content=changelog_content(planned_window={"start": "2026-01-02T10:00:00Z", "end": "2026-01-01T10:00:00Z"}),
        )

    assert refused.value.fields == {
        "planned_window.end": [{"code": "window_ends_before_start", "message": "The window must end after it starts."}]
    }
    assert not Changelog.objects.exists()
    assert AuditEvent.objects.count() == events


@pytest.mark.serial
@pytest.mark.django_db(transaction=True)
def test_an_edit_waits_for_a_transaction_that_holds_the_changelog_and_decides_on_what_it_left(cast: Cast) -> None:
    """The edit takes the changelog's lock itself: arriving while another transaction holds it
    (a decision, a deployment report), it waits, then merges into the content that one left."""
    changelog = changelog_make(service=cast.payments_api, by=cast.requester)

    def meanwhile() -> None:
        assert ChangelogRevision.objects.get(changelog=changelog).content["reason"] == changelog_content()["reason"]
        revision = ChangelogRevision.objects.get(changelog=changelog)
        revision.content = {**revision.content, "scope": "Changed while the edit waited."}
        revision.save(update_fields=["content"])

    raised = run_against_held_lock(
        hold=lambda: changelog_lock(changelog=changelog),
        act=lambda: changelog_edit(acting_user=cast.requester, changelog=changelog, changes={"reason": "Edited."}),
        then=meanwhile,
    )

    assert raised == []
    content = ChangelogRevision.objects.get(changelog=changelog).content
    assert (content["reason"], content["scope"]) == ("Edited.", "Changed while the edit waited.")
    assert Changelog.objects.get(pk=changelog.pk).status == ChangelogStatus.DRAFT


def _add_evidence(user: User, changelog: Changelog) -> Evidence:
    return evidence_add(
        acting_user=user, changelog=changelog, data=sarif_clean(), file_name="semgrep.sarif", kind="security"
    )


def _detach_it(user: User, changelog: Changelog) -> None:
    evidence_detach(acting_user=user, changelog=changelog, evidence=Evidence.objects.get(changelog=changelog))


def _with_evidence(cast: Cast) -> Changelog:
    changelog = changelog_make(service=cast.payments_api, by=cast.requester)
    _add_evidence(cast.requester, changelog)
    return changelog


def _attached(changelog: Changelog) -> int:
    return ChangelogRevision.objects.get(changelog=changelog).evidence.count()


_EVIDENCE: dict[str, tuple[Callable[[Cast], Changelog], Callable[[User, Changelog], Any]]] = {
    "add": (lambda cast: changelog_make(service=cast.payments_api, by=cast.requester), _add_evidence),
    "detach": (_with_evidence, _detach_it),
}


@pytest.mark.parametrize("action", _EVIDENCE)
@pytest.mark.parametrize("reader", ["approver", "auditor"])
def test_a_reader_who_may_see_the_changelog_may_not_add_or_detach_its_evidence(
    cast: Cast, action: str, reader: str
) -> None:
    on, act = _EVIDENCE[action]
    changelog = on(cast)
    attached, stored, events = _attached(changelog), Evidence.objects.count(), AuditEvent.objects.count()

    with pytest.raises(PermissionDenied) as refused:
        act(getattr(cast, reader), changelog)

    assert refused.value.code == "changelog_read_only"
    assert (_attached(changelog), Evidence.objects.count(), AuditEvent.objects.count()) == (attached, stored, events)


@pytest.mark.serial
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", _EVIDENCE)
def test_evidence_waits_for_the_changelog_and_checks_who_may_act_under_its_lock(cast: Cast, action: str) -> None:
    """A requester who lost the service while the service waited for the changelog is refused."""
    on, act = _EVIDENCE[action]
    changelog = on(cast)
    attached = _attached(changelog)

    raised = run_against_held_lock(
        hold=lambda: changelog_lock(changelog=changelog),
        act=lambda: act(User.objects.get(pk=cast.requester.pk), changelog),
        then=lambda: remove_perm(MANAGE_CHANGELOGS, cast.requester, cast.payments_api),
    )

    assert [getattr(error, "code", error) for error in raised] == ["changelog_read_only"]
    assert _attached(changelog) == attached
