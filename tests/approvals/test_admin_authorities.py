"""Nobody grants themselves power: a signing authority is asked for by one administrator and
put in force by a second; nobody asks for or confirms authority for themselves; an approval
never counts on an authority its approver asked for or confirmed. Every step and every refusal
is in the audit trail. (The administrator row of THREATS.md, played as the attacker.)"""

import json
from typing import Any

import pytest
from django.contrib.auth.models import Group

from approvals.models import AuthorityGrant
from approvals.selectors import authorities_of
from approvals.services import membership_grant_request
from audit.models import AuditEvent
from core.actors import StepUp
from core.errors import PermissionDenied
from tests.conftest import Cast
from tests.factories import UserFactory, authority_asked, authority_confirmed, authority_give, changelog_make, seen_of
from tests.releasegate.gate_support import check, ready_changelog

URL = "/admin/approvals/approval/authorities/"
PASSWORD = "a-test-password-1234"


@pytest.fixture
def second_admin(cast: Cast) -> Any:
    return UserFactory(username="admin-2", is_superuser=True)


def _ask(client: Any, **fields: Any) -> Any:
    return client.post(URL, {"form": "request", "reason": "New deputy", "password": PASSWORD, "group": "", **fields})


def _decide(client: Any, grant: AuthorityGrant, decision: str, password: str = PASSWORD) -> Any:
    return client.post(URL, {"form": "decide", "grant": grant.pk, "decision": decision, "password": password})


@pytest.mark.requirement("PR-05", "PR-21")
def test_a_grant_takes_effect_only_when_a_second_administrator_confirms_it(cast: Cast, second_admin: Any) -> None:
    dba = UserFactory(username="dba")
    first = cast.session(cast.admin)

    asked = _ask(first, domain=cast.payments.pk, authority="data_sign_off", user=dba.pk)
    [grant] = AuthorityGrant.objects.filter(user=dba)
    assert asked.status_code == 302
    assert grant.status == "pending"
    assert authorities_of(user=dba, domain=cast.payments) == frozenset()
    assert b"Waiting for a second administrator" in first.get(URL).content

    own = _decide(first, grant, "confirm")
    assert own.status_code == 200
    assert "a second administrator must confirm it" in own.content.decode()
    grant.refresh_from_db()
    assert grant.status == "pending"

    confirmed = _decide(cast.session(second_admin), grant, "confirm")
    assert confirmed.status_code == 302
    assert authorities_of(user=dba, domain=cast.payments) == {"data_sign_off"}

    revoked = _decide(cast.session(second_admin), grant, "revoke")
    assert revoked.status_code == 302
    assert authorities_of(user=dba, domain=cast.payments) == frozenset()
    steps = [
        (event.action, event.actor, json.loads(event.data)["status"]["to"] if "status" in event.data else None)
        for event in AuditEvent.objects.filter(action__startswith="authority:").order_by("id")
        if json.loads(event.data).get("user") in ("dba", None)
    ]
    assert steps[-4:] == [
        ("authority:requested", "user:admin", "pending"),
        ("authority:attempt_refused", "user:admin", None),
        ("authority:granted", "user:admin-2", "active"),
        ("authority:revoked", "user:admin-2", "revoked"),
    ]


@pytest.mark.requirement("PR-21")
def test_a_superuser_cannot_grant_itself_authority(cast: Cast, second_admin: Any) -> None:
    response = _ask(cast.session(cast.admin), domain=cast.payments.pk, authority="sign_off", user=cast.admin.pk)

    assert response.status_code == 200
    assert "You may not grant signing authority to yourself." in response.content.decode()
    assert not AuthorityGrant.objects.filter(user=cast.admin).exists()
    [refusal] = AuditEvent.objects.filter(action="authority:attempt_refused")
    assert json.loads(refusal.data)["code"] == "grant_to_self"


@pytest.mark.requirement("PR-21")
def test_nobody_confirms_a_grant_that_empowers_them(cast: Cast, second_admin: Any) -> None:
    grant = authority_asked(by=cast.admin, domain=cast.payments, user=second_admin)
    with pytest.raises(PermissionDenied) as refused:
        authority_confirmed(grant, by=second_admin)
    assert refused.value.code == "grant_to_self"


def test_an_administrator_cannot_empower_a_group_they_belong_to_or_join_one(cast: Cast, second_admin: Any) -> None:
    board = Group.objects.create(name="board")
    cast.admin.groups.add(board)
    with pytest.raises(PermissionDenied):
        authority_asked(by=cast.admin, domain=cast.payments, group=board)

    signers = Group.objects.create(name="signers")
    authority_give(domain=cast.payments, group=signers)
    with pytest.raises(PermissionDenied):
        membership_grant_request(
            acting_user=cast.admin, group=signers, user=cast.admin, reason="x", step_up=StepUp.of(cast.admin)
        )


@pytest.mark.requirement("PR-04")
def test_joining_a_signing_group_without_a_confirmed_membership_grants_nothing(cast: Cast, second_admin: Any) -> None:
    """An administrator adds themselves to a group that signs (Django's own membership, as a
    shell or a careless form could): it is not a signing authority."""
    signers = Group.objects.create(name="signers")
    authority_give(domain=cast.payments, group=signers)
    cast.admin.groups.add(signers)

    assert authorities_of(user=cast.admin, domain=cast.payments) == frozenset()


def test_an_approval_relying_on_an_authority_its_approver_asked_for_does_not_count(cast: Cast) -> None:
    """Administrator A asks for authority for a group; B confirms; A is (or becomes) a member
    through a membership B confirms too. A's approval relies on a grant A asked for."""
    changelog = ready_changelog(cast, approved=False)
    signers = Group.objects.create(name="signers")
    admin_b = UserFactory(username="admin-b", is_superuser=True)
    authority_confirmed(authority_asked(by=cast.admin, domain=cast.payments, group=signers), by=admin_b)
    AuthorityGrant.objects.create(  # A's membership, confirmed by B, asked for by a third admin
        kind="membership",
        group=signers,
        user=cast.admin,
        subject=AuthorityGrant.subject_of(kind="membership", user_id=cast.admin.pk, group_id=signers.pk),
        status="active",
        reason="x",
        requested_by=UserFactory(username="admin-c", is_superuser=True),
        requested_at=changelog.created_at,
        decided_by=admin_b,
    )
    cast.admin.groups.add(signers)
    assert authorities_of(user=cast.admin, domain=cast.payments) == frozenset()

    from approvals.models import Approval

    revision = changelog.current_revision
    assert revision is not None
    Approval.objects.create(  # written past the service, which refuses it at the door
        changelog=changelog,
        revision=revision,
        content_hash=revision.content_hash,
        decision="approved",
        approver=cast.admin,
        authorities=["sign_off"],
        decided_at=changelog.created_at,
        expires_at=changelog.created_at.replace(year=2100),
    )

    reasons = [reason["code"] for reason in check(cast.pipeline.client()).json()["reasons"]]
    assert reasons == ["approvals_missing", "approval_authority_self_granted"]
    state = cast.session(cast.approver).get(f"/api/v1/changelogs/{changelog.id}/approvals/").json()
    assert state["approvals"][0]["not_counted_because"] == "self_granted_authority"


def test_only_administrators_see_the_authority_matrix(cast: Cast) -> None:
    assert cast.session(cast.approver).get(URL).status_code == 403
    assert cast.session(cast.auditor).get(URL).status_code == 403


def test_a_pipeline_cannot_be_made_a_signing_authority(cast: Cast) -> None:
    response = _ask(
        cast.session(cast.admin), domain=cast.payments.pk, authority="sign_off", user=cast.pipeline.account.pk
    )

    assert response.status_code == 200  # the form is shown again: service accounts are not offered
    assert not AuthorityGrant.objects.filter(user=cast.pipeline.account).exists()


def test_a_wrong_password_asks_for_nothing_and_is_recorded(cast: Cast) -> None:
    response = _ask(
        cast.session(cast.admin),
        domain=cast.payments.pk,
        authority="sign_off",
        user=cast.requester.pk,
        password="wrong",
    )

    assert response.status_code == 200
    assert not AuthorityGrant.objects.filter(user=cast.requester).exists()
    assert AuditEvent.objects.filter(action="authentication:step_up_failed", actor="user:admin").count() == 1


def test_the_grantee_of_a_confirmed_grant_may_approve(cast: Cast, second_admin: Any) -> None:
    deputy = UserFactory(username="deputy")
    grant = authority_asked(by=cast.admin, domain=cast.payments, user=deputy, reason="Deputy")
    changelog = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)
    body = {"decision": "approved", "password": PASSWORD, **seen_of(changelog)}
    url = f"/api/v1/changelogs/{changelog.id}/approvals/"

    before = cast.session(deputy).post(url, body, format="json")
    authority_confirmed(grant, by=second_admin)
    after = cast.session(deputy).post(url, body, format="json")

    assert before.status_code == 404  # a pending grant shows the domain's changes to nobody
    assert before.json()["code"] == "changelog_not_found"
    assert after.status_code == 201
    assert after.json()["status"] == "approved"
