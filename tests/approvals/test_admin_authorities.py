"""Administrators keep the authority matrix in the admin; every grant and revoke is audited."""

from approvals.selectors import authorities_of
from audit.models import AuditEvent
from tests.conftest import Cast
from tests.factories import UserFactory


def test_an_administrator_grants_and_revokes_an_authority_in_the_admin(cast: Cast) -> None:
    admin = cast.session(cast.admin)
    dba = UserFactory(username="dba")
    form = {"domain": cast.payments.pk, "authority": "data_sign_off", "user": dba.pk, "group": "", "action": "grant"}

    granted = admin.post("/admin/approvals/approval/authorities/", form)
    page = admin.get("/admin/approvals/approval/authorities/")
    revoked = admin.post("/admin/approvals/approval/authorities/", {**form, "action": "revoke"})

    assert granted.status_code == revoked.status_code == 302
    assert b"dba: data_sign_off" in page.content
    assert authorities_of(user=dba, domain=cast.payments) == frozenset()
    actions = list(AuditEvent.objects.filter(target_type="changelogs.domain").values_list("action", "actor"))
    assert actions == [("authority:granted", "user:admin"), ("authority:revoked", "user:admin")]


def test_only_administrators_see_the_authority_matrix(cast: Cast) -> None:
    assert cast.session(cast.approver).get("/admin/approvals/approval/authorities/").status_code == 403
    assert cast.session(cast.auditor).get("/admin/approvals/approval/authorities/").status_code == 403


def test_a_pipeline_cannot_be_made_a_signing_authority(cast: Cast) -> None:
    admin = cast.session(cast.admin)

    response = admin.post(
        "/admin/approvals/approval/authorities/",
        {
            "domain": cast.payments.pk,
            "authority": "sign_off",
            "user": cast.pipeline.account.pk,
            "group": "",
            "action": "grant",
        },
    )

    assert response.status_code == 200  # the form is shown again: service accounts are not offered
    assert authorities_of(user=cast.pipeline.account, domain=cast.payments) == frozenset()
