"""Changes to people's rights in the admin (flags, groups, permissions) are audited with old
and new values and confirmed with the administrator's own password; a group that signs is not
joined there (that is a grant a second administrator confirms)."""

import json
from typing import Any

from django.contrib.auth.models import Group, Permission

from audit.models import AuditEvent
from releasegate.models import User
from tests.conftest import Cast
from tests.factories import UserFactory, authority_give

PASSWORD = "a-test-password-1234"


def _user_form(user: User, **changes: Any) -> dict[str, Any]:
    form = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": user.email,
        "is_active": "on",
        "is_staff": "on",
        "groups": [],
        "user_permissions": [],
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": "2026-12-01",
        "date_joined_1": "09:00:00",
        "your_password": PASSWORD,
    }
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


def test_making_someone_superuser_and_a_group_member_is_audited_with_old_and_new(cast: Cast) -> None:
    ops = Group.objects.create(name="ops")
    permission = Permission.objects.get(codename="view_auditevent")

    response = cast.session(cast.admin).post(
        f"/admin/releasegate/user/{cast.requester.pk}/change/",
        _user_form(cast.requester, is_superuser="on", groups=[ops.pk], user_permissions=[permission.pk]),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    cast.requester.refresh_from_db()
    assert cast.requester.is_superuser
    [event] = AuditEvent.objects.filter(action="user:saved")
    assert event.actor == "user:admin"
    changes = json.loads(event.data)["changes"]
    assert changes["is_superuser"] == {"old": False, "new": True}
    assert changes["groups"] == {"old": [], "new": ["ops"]}
    assert changes["user_permissions"] == {"old": [], "new": ["audit.view_auditevent"]}


def test_without_the_administrators_password_nothing_changes(cast: Cast) -> None:
    response = cast.session(cast.admin).post(
        f"/admin/releasegate/user/{cast.requester.pk}/change/",
        _user_form(cast.requester, is_superuser="on", your_password="wrong"),
    )

    assert response.status_code == 200
    cast.requester.refresh_from_db()
    assert not cast.requester.is_superuser
    assert not AuditEvent.objects.filter(action="user:saved").exists()
    assert AuditEvent.objects.filter(action="authentication:step_up_failed", actor="user:admin").count() == 1


def test_a_group_that_signs_cannot_be_joined_on_the_user_page(cast: Cast) -> None:
    signers = Group.objects.create(name="payments-signers")
    authority_give(domain=cast.payments, group=signers)
    member = UserFactory(username="member")

    response = cast.session(cast.admin).post(
        f"/admin/releasegate/user/{cast.admin.pk}/change/",
        _user_form(cast.admin, is_superuser="on", groups=[signers.pk]),
    )

    assert response.status_code == 200  # not a choice offered
    assert not cast.admin.groups.filter(pk=signers.pk).exists()
    member.groups.add(signers)  # an existing membership stays through an unrelated edit
    cast.session(cast.admin).post(
        f"/admin/releasegate/user/{member.pk}/change/", _user_form(member, email="m@x.example")
    )
    assert member.groups.filter(pk=signers.pk).exists()


def test_a_groups_permissions_are_audited(cast: Cast) -> None:
    ops = Group.objects.create(name="ops")
    permission = Permission.objects.get(codename="view_deployment")

    response = cast.session(cast.admin).post(
        f"/admin/auth/group/{ops.pk}/change/",
        {"name": "ops", "permissions": [permission.pk], "your_password": PASSWORD},
    )

    assert response.status_code == 302
    [event] = AuditEvent.objects.filter(action="group:saved")
    assert json.loads(event.data)["changes"]["permissions"] == {"old": [], "new": ["releasegate.view_deployment"]}


def test_a_new_person_is_audited(cast: Cast) -> None:
    response = cast.session(cast.admin).post(
        "/admin/releasegate/user/add/",
        {
            "username": "newcomer",
            "usable_password": "true",
            "password1": "a-long-new-password-42",
            "password2": "a-long-new-password-42",
            "your_password": PASSWORD,
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    [event] = AuditEvent.objects.filter(action="user:saved")
    data = json.loads(event.data)
    assert data["created"] is True
    assert data["changes"]["username"] == {"old": None, "new": "newcomer"}
