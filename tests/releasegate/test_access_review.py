"""The access review: the report of who may sign counts what the database holds, directly
and through groups, as CSV and as a signed PDF; a periodic review revokes every authority not
re-confirmed by its deadline, with its audit event."""

import csv
import io
import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm, get_users_with_perms

from approvals.models import AuthorityGrant, GrantKind, GrantStatus, Notification
from approvals.selectors import authorities_of
from approvals.services import grant_revoke
from audit.models import AuditEvent
from changelogs.models import Service
from changelogs.selectors import MANAGE_CHANGELOGS
from core.actors import StepUp
from releasegate.access_review import access_report, reviews_close_due
from releasegate.models import AccessReview, AccessReviewItem, ApiToken
from releasegate.services import api_token_issue
from tests.conftest import Cast
from tests.factories import UserFactory, authority_give, changelog_make, seen_of
from tests.releasegate.gate_support import PASSWORD

URL = "/admin/releasegate/accessreview/"


def _held_in_database() -> int:
    """Counted here on its own: grants in force to a person, plus each active membership of a
    group for each grant in force to that group."""
    active = AuthorityGrant.objects.filter(status=GrantStatus.ACTIVE)
    direct = active.filter(kind=GrantKind.AUTHORITY, user__isnull=False).count()
    through_groups = sum(
        active.filter(kind=GrantKind.MEMBERSHIP, group_id=group_id).count()
        for group_id in active.filter(kind=GrantKind.AUTHORITY, group__isnull=False).values_list("group_id", flat=True)
    )
    return direct + through_groups


@pytest.fixture
def signers(cast: Cast) -> Group:
    group = Group.objects.create(name="payments-signers")
    for name in ("deputy-1", "deputy-2"):
        group.user_set.add(UserFactory(username=name))
    authority_give(domain=cast.payments, group=group)  # the members then are confirmed with it
    authority_give(domain=cast.payments, authority="security_sign_off", group=group)
    gone = authority_give(domain=cast.transfers, user=UserFactory(username="leaver"))
    grant_revoke(
        acting_user=UserFactory(username="grants-admin-a"),
        grant=gone,
        step_up=StepUp.of(UserFactory(username="grants-admin-a")),
    )
    return group


@pytest.mark.requirement("PR-22")
def test_the_report_counts_what_the_database_holds(cast: Cast, signers: Group, tmp_path: Path) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.requester, submitted=True)
    body = {"decision": "approved", "reason": "ok", "password": PASSWORD, **seen_of(changelog)}
    assert (
        cast.session(cast.approver)
        .post(f"/api/v1/changelogs/{changelog.pk}/approvals/", body, format="json")
        .status_code
        == 201
    )

    rows = access_report()
    assert len(rows) == _held_in_database() == 2 + 2 * 2
    by_person = {(row.person, row.authority): row for row in rows}
    assert by_person[("deputy-1", "security_sign_off")].via == "group payments-signers"
    assert by_person[("deputy-1", "sign_off")].membership_confirmed_by == "grants-admin-b"
    assert by_person[("approver", "sign_off")].confirmed_by == "grants-admin-b"
    assert by_person[("approver", "sign_off")].last_used != ""
    assert by_person[("other-approver", "sign_off")].last_used == ""
    assert "leaver" not in {row.person for row in rows}

    auditor = cast.session(cast.auditor)
    csv_response = auditor.get(f"{URL}report.csv")
    assert csv_response.status_code == 200
    records = list(csv.DictReader(io.StringIO(csv_response.content.decode())))
    assert len([record for record in records if record["kind"] == "authority"]) == _held_in_database()
    pdf = auditor.get(f"{URL}report.pdf")
    assert pdf.status_code == 200
    assert AuditEvent.objects.filter(action="access_review:report_downloaded").count() == 2
    for tool in ("pdfsig", "pdftotext"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} from Debian's poppler-utils (.ci/run installs it)")
    path = tmp_path / "access-review.pdf"
    path.write_bytes(pdf.content)
    signature = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False).stdout
    assert "Signature is Valid." in signature
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert f"{_held_in_database()} authorities held" in text
    assert "Separation-of-duties conflicts" in text
    assert cast.session(cast.requester).get(f"{URL}report.csv").status_code == 403


@pytest.mark.requirement("PR-22")
def test_an_authority_not_reconfirmed_by_the_deadline_is_revoked_and_audited(cast: Cast, signers: Group) -> None:
    admin = cast.session(cast.admin)
    assert admin.post(URL, {"open": "1"}).status_code == 302
    review = AccessReview.objects.get()
    active = AuthorityGrant.objects.filter(status=GrantStatus.ACTIVE)
    assert review.items.count() == active.count()

    approver_grant = active.get(kind=GrantKind.AUTHORITY, user=cast.approver)
    item = review.items.get(grant=approver_grant)
    # The grantee does not re-confirm their own authority; the domain's owners do.
    assert cast.session(cast.approver).post(URL, {"item": item.pk}).status_code == 302
    assert AccessReviewItem.objects.get(pk=item.pk).status == "pending"
    assert admin.post(URL, {"item": item.pk}).status_code == 302
    assert AccessReviewItem.objects.get(pk=item.pk).status == "reconfirmed"
    assert AuditEvent.objects.filter(action="access_review:reconfirmed").count() == 1

    assert reviews_close_due(now=review.deadline - timedelta(seconds=1)) == 0  # not yet
    revoked = reviews_close_due(now=review.deadline + timedelta(seconds=1))
    assert revoked == review.items.count() - 1
    assert AuthorityGrant.objects.get(pk=approver_grant.pk).status == GrantStatus.ACTIVE
    assert authorities_of(user=cast.approver, domain=cast.payments) == {"sign_off"}
    assert authorities_of(user=cast.other_approver, domain=cast.transfers) == frozenset()
    events = AuditEvent.objects.filter(action="access_review:revoked")
    assert events.count() == revoked
    other = AuthorityGrant.objects.get(kind=GrantKind.AUTHORITY, user=cast.other_approver)
    assert other.status == GrantStatus.REVOKED
    [event] = [e for e in events if json.loads(e.data)["grant"] == str(other.pk)]
    assert event.actor == "system:releasegate"
    assert AccessReview.objects.get().status == "closed"


def _rights_in_database(cast: Cast) -> set[tuple[str, str, str]]:
    """Counted here on its own, for the cast: who may request changes and report deployments
    on which domain's services (the object permission, superusers everywhere), who issued a
    live deployments token, who administers authorities."""
    found = {
        (name, service.domain.slug, "request_and_report_deployments")
        for service in Service.objects.select_related("domain")
        for name in get_users_with_perms(service, only_with_perms_in=["manage_changelogs"]).values_list(
            "username", flat=True
        )
    }
    found |= {
        (user.username, service.domain.slug, "request_and_report_deployments")
        for user in get_user_model().objects.filter(is_superuser=True)
        for service in Service.objects.all()
    }
    found |= {("other-approver", "transfers", "issued_deployment_token")}
    found |= {
        (user.username, "", "administer_authorities") for user in get_user_model().objects.filter(is_superuser=True)
    }
    return found


@pytest.mark.requirement("PR-22")
@pytest.mark.requirement("PR-07")
def test_the_report_lists_request_deploy_and_admin_rights_and_flags_sod_conflicts(cast: Cast, tmp_path: Path) -> None:
    # The payments approver may also report payments-api's deployments; the transfers approver
    # issued the transfers pipeline's deployment token. Both are conflicts; the requester is not.
    assign_perm(MANAGE_CHANGELOGS, cast.approver, cast.payments_api)
    token, _ = api_token_issue(
        acting_user=cast.admin, account=cast.other_pipeline.account, name="deploys", scopes=["deployments"]
    )
    ApiToken.objects.filter(pk=token.pk).update(created_by=cast.other_approver)

    body = cast.session(cast.auditor).get("/api/v1/access/report")
    assert body.status_code == 200, body.content
    report = body.json()
    rights = {(row["person"], row["domain"], row["right"]) for row in report["rights"]}
    assert {right for right in rights if right[2] != "decide_gate_overrides"} == _rights_in_database(cast)
    assert ("approver", "payments", "decide_gate_overrides") in rights
    pipelines = [row for row in report["rights"] if not row["human"]]
    assert {row["person"] for row in pipelines} == {"svc-payments-ci", "svc-transfers-ci"}
    conflicts = {(row["person"], row["domain"]): row for row in report["conflicts"]}
    assert set(conflicts) == {("approver", "payments"), ("other-approver", "transfers")}
    assert conflicts[("approver", "payments")]["also"] == "request_and_report_deployments"
    assert conflicts[("other-approver", "transfers")]["also"] == "issued_deployment_token"
    assert len(report["authorities"]) == _held_in_database()
    assert AuditEvent.objects.filter(action="access_review:report_downloaded").count() == 1
    assert cast.session(cast.requester).get("/api/v1/access/report").json()["code"] == "not_an_auditor"

    records = list(csv.DictReader(io.StringIO(cast.session(cast.auditor).get(f"{URL}report.csv").content.decode())))
    flagged = {(record["person"], record["domain"]) for record in records if record["conflict"]}
    assert flagged == set(conflicts)
    assert len([record for record in records if record["kind"] == "right"]) == len(report["rights"])


REVIEW_API = "/api/v1/access/reviews/open"


@pytest.mark.requirement("PR-22")
def test_each_domains_owners_are_asked_and_reconfirm_through_the_api_and_what_they_leave_is_revoked(
    cast: Cast,
) -> None:
    deputy = UserFactory(username="payments-deputy")
    authority_give(domain=cast.payments, user=deputy)
    assert cast.session(cast.approver).post(REVIEW_API).json()["code"] == "not_an_administrator"
    opened = cast.session(cast.admin).post(REVIEW_API)
    assert opened.status_code == 201, opened.content
    assert cast.session(cast.admin).post(REVIEW_API).json()["code"] == "review_already_open"

    # Each domain's owners are asked for their domain's grants, audited and notified.
    asked = {
        event.target_id: json.loads(event.data)["owners"]
        for event in AuditEvent.objects.filter(action="access_review:owners_asked")
    }
    assert asked == {str(cast.payments.pk): ["approver", "payments-deputy"], str(cast.transfers.pk): ["other-approver"]}
    by_domain = {
        n.payload["domain"]: n for n in Notification.objects.filter(event="access_review.domain", channel="email")
    }
    assert set(by_domain) == {"payments", "transfers"}
    assert by_domain["payments"].recipients == ["approver@bank.example", "payments-deputy@bank.example"]
    assert by_domain["transfers"].recipients == ["other-approver@bank.example"]
    assert len(by_domain["payments"].payload["grants"]) == 2

    # An owner sees the items they may re-confirm: their domain's, not their own.
    seen = cast.session(deputy).get(REVIEW_API).json()
    approver_grant = AuthorityGrant.objects.get(kind=GrantKind.AUTHORITY, user=cast.approver)
    deputy_grant = AuthorityGrant.objects.get(kind=GrantKind.AUTHORITY, user=deputy)
    assert [item["grant"] for item in seen["items"]] == [str(approver_grant.pk)]
    item_of = {str(item.grant_id): item.pk for item in AccessReviewItem.objects.all()}
    reconfirm = "/api/v1/access/reviews/items/{}/reconfirm"
    refused = cast.session(cast.other_approver).post(reconfirm.format(item_of[str(approver_grant.pk)]))
    assert refused.json()["code"] == "not_a_domain_owner"  # an owner of another domain
    assert cast.session(deputy).post(reconfirm.format(item_of[str(deputy_grant.pk)])).status_code == 403  # own
    done = cast.session(deputy).post(reconfirm.format(item_of[str(approver_grant.pk)]))
    assert done.status_code == 200, done.content
    assert done.json()["status"] == "reconfirmed"
    assert done.json()["decided_by"] == "payments-deputy"
    again = cast.session(deputy).post(reconfirm.format(item_of[str(approver_grant.pk)]))
    assert again.json()["code"] == "review_item_not_pending"
    assert len(cast.session(cast.auditor).get(REVIEW_API).json()["items"]) == AccessReviewItem.objects.count()

    # At the deadline what was not re-confirmed is revoked, audited, and the grantee told.
    review = AccessReview.objects.get()
    assert reviews_close_due(now=review.deadline + timedelta(seconds=1)) == 2
    assert authorities_of(user=cast.approver, domain=cast.payments) == {"sign_off"}
    assert authorities_of(user=deputy, domain=cast.payments) == frozenset()
    assert AuditEvent.objects.filter(action="access_review:revoked").count() == 2
    revoked = Notification.objects.filter(event="access_review.revoked", channel="email")
    assert {tuple(n.recipients) for n in revoked if "payments-deputy@bank.example" in n.recipients}
    assert cast.session(cast.auditor).get(REVIEW_API).json()["code"] == "not_found"
