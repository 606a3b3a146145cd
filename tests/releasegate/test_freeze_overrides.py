"""A freeze override lets one change through a freeze: asked with a reason and the password,
under the independence rules of an approval. Played by those who must not do it alone."""

from typing import Any

import pytest
from django.contrib.auth.models import Group

from audit.models import AuditEvent
from changelogs.models import Changelog, Evidence
from core.actors import StepUp
from core.errors import InvalidInput, PermissionDenied
from releasegate.freezes import freeze_override_approve
from releasegate.models import FreezeOverride, FreezeWindow
from tests.conftest import Cast
from tests.factories import UserFactory, authority_asked, authority_confirmed, authority_give
from tests.releasegate.gate_support import check, ready_changelog, year_end_freeze

PASSWORD = "a-test-password-1234"


@pytest.fixture
def frozen(cast: Cast) -> tuple[Changelog, FreezeWindow]:
    changelog = ready_changelog(cast, commit_authors=["author@bank.example"])
    freeze = year_end_freeze(cast)
    return changelog, freeze


def _codes(cast: Cast) -> list[str]:
    return [reason["code"] for reason in check(cast.pipeline.client()).json()["reasons"]]


def _override_form(freeze: FreezeWindow, changelog: Changelog, **fields: Any) -> dict[str, Any]:
    return {"freeze": freeze.pk, "changelog": changelog.pk, "reason": "Fixes a fee bug", **fields}


def test_an_override_in_the_admin_without_the_password_is_refused(
    cast: Cast, frozen: tuple[Changelog, FreezeWindow]
) -> None:
    changelog, freeze = frozen
    approver = cast.session(cast.approver)

    without = approver.post("/admin/releasegate/freezeoverride/add/", _override_form(freeze, changelog))
    wrong = approver.post(
        "/admin/releasegate/freezeoverride/add/", _override_form(freeze, changelog, your_password="guess")
    )

    assert without.status_code == wrong.status_code == 200  # the form again
    assert not FreezeOverride.objects.exists()
    assert _codes(cast) == ["freeze_active"]


def test_an_override_in_the_admin_with_reason_and_password_lets_the_change_through(
    cast: Cast, frozen: tuple[Changelog, FreezeWindow]
) -> None:
    changelog, freeze = frozen

    response = cast.session(cast.approver).post(
        "/admin/releasegate/freezeoverride/add/", _override_form(freeze, changelog, your_password=PASSWORD)
    )

    assert response.status_code == 302
    assert _codes(cast) == ["allowed"]
    assert AuditEvent.objects.filter(action="freeze:overridden", actor="user:approver").count() == 1


@pytest.mark.parametrize("who", ["requester", "uploader", "author", "self_granted"])
def test_someone_not_independent_of_the_change_cannot_override_the_freeze(
    cast: Cast, frozen: tuple[Changelog, FreezeWindow], who: str
) -> None:
    changelog, freeze = frozen
    if who == "requester":
        person = cast.requester
        Changelog.objects.filter(pk=changelog.pk).update(created_by=person)
        authority_give(domain=cast.payments, user=person)
    elif who == "uploader":
        person = UserFactory(username="uploader")
        Evidence.objects.filter(changelog=changelog).update(uploaded_by=person)
        authority_give(domain=cast.payments, user=person)
    elif who == "author":
        person = UserFactory(username="author", email="author@bank.example")
        authority_give(domain=cast.payments, user=person)
    else:
        person = UserFactory(username="admin-a", is_superuser=True)
        other = UserFactory(username="admin-b", is_superuser=True)
        board = Group.objects.create(name="board")
        authority_confirmed(authority_asked(by=person, domain=cast.payments, group=board), by=other)
        person.groups.add(board)  # a membership nobody confirmed

    with pytest.raises(PermissionDenied):
        freeze_override_approve(
            acting_user=person, freeze=freeze, changelog=changelog, reason="Urgent", step_up=StepUp.of(person)
        )

    assert not FreezeOverride.objects.exists()
    assert _codes(cast) == ["freeze_active"]


def test_an_override_needs_a_reason(cast: Cast, frozen: tuple[Changelog, FreezeWindow]) -> None:
    changelog, freeze = frozen
    with pytest.raises(InvalidInput) as refused:
        freeze_override_approve(
            acting_user=cast.approver, freeze=freeze, changelog=changelog, reason="  ", step_up=StepUp.of(cast.approver)
        )
    assert refused.value.code == "override_reason_required"


def test_an_override_called_without_step_up_is_refused(cast: Cast, frozen: tuple[Changelog, FreezeWindow]) -> None:
    """The service checks the step-up itself: a caller that skips the admin's password form
    (a script, a new view) records nothing."""
    changelog, freeze = frozen
    with pytest.raises(PermissionDenied) as refused:
        freeze_override_approve(
            acting_user=cast.approver, freeze=freeze, changelog=changelog, reason="Urgent", step_up=None
        )

    assert refused.value.code == "step_up_required"
    assert not FreezeOverride.objects.exists()
    assert _codes(cast) == ["freeze_active"]
