"""List filters take what a client may send, not only what the database can hold: a value no
row can match (a NUL character, which PostgreSQL text cannot store; a number beyond the
column's range; a digit that only Unicode calls one) is a 400 naming the filter, never a 500.
Found by the schemathesis fuzz in CI (`.ci/schemathesis`)."""

import pytest

from releasegate.models import Deployment
from tests.conftest import Cast
from tests.factories import changelog_make
from tests.releasegate.gate_support import check, ready_changelog
from tests.releasegate.test_deployments import report


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/api/v1/policies/", "domain=pay%00ments", "domain"),
        ("/api/v1/deployments/", "service=payments%00-api", "service"),
        ("/api/v1/deployments/", "unauthorised=perhaps", "unauthorised"),
        ("/api/v1/journeys/", "domain=pay%00ments", "domain"),
        ("/api/v1/changelogs/", "service=pay%00ments-api", "service"),
    ],
)
def test_a_filter_value_no_row_can_hold_is_refused(cast: Cast, path: str, query: str, field: str) -> None:
    response = cast.pipeline.client().get(f"{path}?{query}")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"
    assert field in response.json()["fields"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/changelogs/", "status"),
        ("/api/v1/deployments/", "service"),
        ("/api/v1/journeys/", "domain"),
        ("/api/v1/policies/", "domain"),
    ],
)
def test_an_empty_filter_is_refused_not_read_as_no_filter(cast: Cast, path: str, field: str) -> None:
    """`?status=` used to list every changelog (REST framework reads a query like a form, where
    an empty optional field is "not given"); the schema says a filter is at least one character.
    Found by schemathesis (`--checks all`, ST201)."""
    response = cast.pipeline.client().get(f"{path}?{field}=")

    assert response.status_code == 400
    assert response.json()["fields"][field][0]["code"] == "blank"


@pytest.mark.parametrize("revision", ["%00", "²", "0", "99999999999999999999", "-1"])
def test_an_evidence_list_revision_must_be_a_revision_number(cast: Cast, revision: str) -> None:
    changelog = changelog_make(service=cast.payments_api)

    response = cast.pipeline.client().get(f"/api/v1/changelogs/{changelog.pk}/evidence/?revision={revision}")

    assert response.status_code == 400
    assert "revision" in response.json()["fields"]


def test_the_deployment_filters_still_filter(cast: Cast) -> None:
    ready_changelog(cast)
    client = cast.pipeline.client()
    assert check(client).json()["decision"] == "allow"
    report(client, "run-1")
    report(client, "run-2", artifact_digest="sha256:" + "e" * 64)  # no allow decision covers it
    assert Deployment.objects.filter(unauthorised=True).count() == 1

    flagged = client.get("/api/v1/deployments/?unauthorised=true").json()["results"]
    everything = client.get("/api/v1/deployments/?unauthorised=false").json()["results"]
    other_service = client.get("/api/v1/deployments/?service=payments-web").json()["results"]

    assert [d["unauthorised"] for d in flagged] == [True]
    assert len(everything) == 2
    assert other_service == []


def test_the_policy_filter_still_filters(cast: Cast) -> None:
    client = cast.pipeline.client()

    assert client.get("/api/v1/policies/?domain=payments").status_code == 200
    assert client.get("/api/v1/policies/?domain=nowhere").json() == []
