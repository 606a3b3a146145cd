"""Platform teams edit policies in the admin; every save is a new, audited version."""

import json

import pytest

from audit.models import AuditEvent
from changelogs.models import Policy
from tests.conftest import Cast


@pytest.mark.requirement("PR-05", "PR-21")
def test_saving_a_policy_in_the_admin_makes_a_new_audited_version(cast: Cast) -> None:
    admin = cast.session(cast.admin)
    form = {"domain": cast.payments.pk, "service": "", "rules": json.dumps({"max_p95_ms": 300}), "reason": "Faster"}

    first = admin.post("/admin/changelogs/policy/add/", form)
    second = admin.post("/admin/changelogs/policy/add/", {**form, "rules": json.dumps({"max_p95_ms": 250})})

    assert first.status_code == second.status_code == 302
    versions = list(Policy.objects.filter(domain=cast.payments).order_by("version").values_list("version", "rules"))
    assert [(v, r["max_p95_ms"]) for v, r in versions] == [(1, 300.0), (2, 250.0)]
    assert AuditEvent.objects.filter(action="policy:created", actor="user:admin").count() == 2


def test_bad_rules_are_shown_and_nothing_is_saved(cast: Cast) -> None:
    admin = cast.session(cast.admin)

    response = admin.post(
        "/admin/changelogs/policy/add/",
        {"domain": cast.payments.pk, "service": "", "rules": json.dumps({"max_p95": 1}), "reason": "typo"},
    )

    assert response.status_code == 200
    assert b"unknown rule(s): max_p95" in response.content
    assert not Policy.objects.exists()


@pytest.mark.requirement("PR-21")
def test_a_policy_version_cannot_be_changed_or_deleted(cast: Cast) -> None:
    from changelogs.services import policy_create

    policy = policy_create(acting_user=cast.admin, domain=cast.payments, rules={}, reason="Defaults")
    admin = cast.session(cast.admin)

    assert admin.post(f"/admin/changelogs/policy/{policy.pk}/change/", {"reason": "x"}).status_code == 403
    assert admin.post(f"/admin/changelogs/policy/{policy.pk}/delete/", {"post": "yes"}).status_code == 403
