"""Scope 6 of issue 15: an incident shows on the pages of the changes linked to it, not only in
the API and the pack. The approver's page belongs to approvals, which sits below incidents in
the layers: incidents adds the context itself (approvals.admin.change_context_extras)."""

from changelogs.models import ChangelogKind
from tests.conftest import Cast
from tests.factories import changelog_make
from tests.incidents.conftest import incident_make


def test_the_approvers_page_of_a_hotfix_names_the_incident_it_answers(cast: Cast) -> None:
    incident = incident_make(service=cast.payments_api)
    hotfix = changelog_make(
        service=cast.payments_api,
        kind=ChangelogKind.HOTFIX,
        submitted=True,
        hotfix={
            "incident_reference": incident.reference,
            "emergency_category": "service_outage",
            "emergency_reason": "Card payments time out.",
        },
    )
    train = changelog_make(service=cast.payments_api, submitted=True)
    approver = cast.session(cast.approver)

    page = approver.get(f"/admin/approvals/approval/queue/{hotfix.id}/").content.decode()
    unrelated = approver.get(f"/admin/approvals/approval/queue/{train.id}/").content.decode()

    assert 'id="linked-incidents"' in page
    assert f"Answers {incident.reference} (high, open): Card payments time out" in page
    assert 'id="linked-incidents"' not in unrelated
