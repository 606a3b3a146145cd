"""With signed approvals required for the tier (the default for high and critical), an
approval without the approver's passkey signature does not count and the gate says
approval_unsigned; signed ones count. On PostgreSQL every check here is read both ways
(tests/releasegate/conftest.py): the SQL path agrees."""

from typing import Any

import pytest

from changelogs.models import Changelog
from changelogs.services import policy_create
from tests.conftest import Cast
from tests.factories import UserFactory, authority_give, seen_of
from tests.identity.soft_passkey import ORIGIN, RP_ID, decide_signed, passkey_registered
from tests.releasegate.gate_support import PASSWORD, approve, check, ready_changelog


@pytest.fixture(autouse=True)
def _relying_party(settings: Any) -> None:
    settings.WEBAUTHN_RP_ID = RP_ID
    settings.WEBAUTHN_ORIGINS = [ORIGIN]


def _codes(response: Any) -> list[str]:
    return [reason["code"] for reason in response.json()["reasons"]]


@pytest.mark.requirement("PR-06")
def test_an_unsigned_approval_of_a_high_risk_change_does_not_count(cast: Cast) -> None:
    changelog = ready_changelog(cast, approved=False, risk_tier="high")
    signer = cast.session(cast.approver)
    passkey = passkey_registered(signer, cast.session(cast.admin))
    body = {"decision": "approved", "reason": "Checked", "password": PASSWORD, **seen_of(changelog)}
    assert decide_signed(signer, passkey, changelog.pk, body).status_code == 201

    second = UserFactory(username="approver-2")
    authority_give(domain=cast.payments, user=second)
    approve(cast, changelog, who=second)  # no assertion
    denied = check(cast.pipeline.client())
    assert denied.json()["decision"] == "deny"
    assert "approval_unsigned" in _codes(denied)
    state = signer.get(f"/api/v1/changelogs/{changelog.pk}/approvals/").json()
    by_approver = {item["approver"]: item for item in state["approvals"]}
    assert by_approver["approver"]["signed"] is True
    assert by_approver["approver"]["counts"] is True
    assert by_approver["approver-2"]["signed"] is False
    assert by_approver["approver-2"]["not_counted_because"] == "unsigned"

    third = UserFactory(username="approver-3")
    authority_give(domain=cast.payments, user=third)
    third_session = cast.session(third)
    third_key = passkey_registered(third_session, cast.session(cast.admin))
    assert decide_signed(third_session, third_key, changelog.pk, body).status_code == 201
    allowed = check(cast.pipeline.client())
    assert allowed.json()["decision"] == "allow", allowed.json()
    assert Changelog.objects.get(pk=changelog.pk).status == "approved"


def test_a_policy_without_signed_approvals_counts_unsigned_ones(cast: Cast) -> None:
    policy_create(acting_user=cast.admin, domain=cast.payments, rules={"signed_approvals": []}, reason="Pilot")
    changelog = ready_changelog(cast, approved=False, risk_tier="critical")
    approve(cast, changelog)
    second = UserFactory(username="approver-2")
    authority_give(domain=cast.payments, user=second)
    approve(cast, changelog, who=second)
    assert check(cast.pipeline.client()).json()["decision"] == "allow"


def test_medium_risk_approvals_need_no_signature_by_default(cast: Cast) -> None:
    ready_changelog(cast)  # approved once, unsigned
    assert check(cast.pipeline.client()).json()["decision"] == "allow"
