"""PR-07, the part Release Gate sees: who can report production deployments to it (and so make a
deployment count as covered) and who can decide a gate (freeze) override, for the access review.
Every human principal among the reporters is an exception to explain."""

from typing import Any

import pytest
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm

from changelogs.selectors import MANAGE_CHANGELOGS
from releasegate.services import api_token_revoke
from tests.conftest import Cast
from tests.factories import FACTORY_ACTOR, UserFactory

URL = "/api/v1/access/deployment-rights"


def _by_principal(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["principal"]: row for row in rows}


@pytest.mark.requirement("PR-07")
def test_the_review_lists_who_can_report_deployments_and_flags_the_humans(cast: Cast) -> None:
    response = cast.session(cast.auditor).get(URL)

    assert response.status_code == 200, response.json()
    reporters = _by_principal(response.json()["deployment_reporters"])
    assert reporters["service_account:svc-payments-ci"] == {
        "principal": "service_account:svc-payments-ci",
        "human": False,
        "services": ["payments-api"],
        "via": ["object permission on the service", "an API token with the deployments scope"],
    }
    assert reporters["service_account:svc-transfers-ci"]["services"] == ["transfers-api"]
    assert reporters["user:requester"]["human"] is True
    assert reporters["user:requester"]["services"] == ["payments-api"]
    assert reporters["user:admin"]["services"] == ["payments-api", "transfers-api"]
    assert reporters["user:admin"]["via"] == ["superuser"]
    # every superuser can report for any service: the two who confirm grants in the cast too
    assert response.json()["humans_who_can_report_deployments"] == [
        "user:admin",
        "user:grants-admin-a",
        "user:grants-admin-b",
        "user:requester",
    ]


@pytest.mark.requirement("PR-07")
def test_rights_through_a_group_or_a_global_permission_are_listed(cast: Cast) -> None:
    release_team = Group.objects.create(name="release-team")
    assign_perm(MANAGE_CHANGELOGS, release_team, cast.transfers_api)
    UserFactory(username="release-manager").groups.add(release_team)
    assign_perm(MANAGE_CHANGELOGS, UserFactory(username="platform-lead"))

    reporters = _by_principal(cast.session(cast.auditor).get(URL).json()["deployment_reporters"])

    assert reporters["user:release-manager"]["services"] == ["transfers-api"]
    assert reporters["user:release-manager"]["via"] == ["group release-team"]
    assert reporters["user:platform-lead"]["services"] == ["payments-api", "transfers-api"]
    assert reporters["user:platform-lead"]["via"] == ["global permission"]


def test_a_pipeline_whose_deployments_tokens_are_revoked_cannot_report(cast: Cast) -> None:
    for token in cast.pipeline.account.api_tokens.all():
        api_token_revoke(acting_user=FACTORY_ACTOR, token=token)

    reporters = _by_principal(cast.session(cast.auditor).get(URL).json()["deployment_reporters"])

    assert "service_account:svc-payments-ci" not in reporters


@pytest.mark.requirement("PR-07")
def test_the_review_lists_who_can_decide_a_gate_override(cast: Cast) -> None:
    deciders = _by_principal(cast.session(cast.auditor).get(URL).json()["override_deciders"])

    assert deciders == {
        "user:approver": {"principal": "user:approver", "domains": ["payments"]},
        "user:other-approver": {"principal": "user:other-approver", "domains": ["transfers"]},
    }


@pytest.mark.parametrize(("who", "status"), [("auditor", 200), ("admin", 200), ("requester", 403), ("approver", 403)])
def test_the_review_is_for_auditors_and_administrators(cast: Cast, who: str, status: int) -> None:
    assert cast.session(getattr(cast, who)).get(URL).status_code == status
    assert cast.pipeline.client().get(URL).status_code == 403
