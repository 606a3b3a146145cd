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
from django.contrib.auth.models import Group

from approvals.models import AuthorityGrant, GrantKind, GrantStatus
from approvals.selectors import authorities_of
from approvals.services import grant_revoke
from audit.models import AuditEvent
from core.actors import StepUp
from releasegate.access_review import access_report, reviews_close_due
from releasegate.models import AccessReview, AccessReviewItem
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
    assert len(records) == _held_in_database()
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
