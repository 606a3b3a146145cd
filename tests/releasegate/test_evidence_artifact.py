"""PR-02: evidence names the artifact it was produced against. Staging tests and performance
results of another build prove nothing about this one: they do not count for the gate
(`evidence_other_artifact`), nor, under the policy's `require_evidence_digest` (on by default),
do those that name no build (`evidence_digest_missing`), on either of the gate's reads (the ORM
path and gate_sql, which the conftest checks against each other on PostgreSQL)."""

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from changelogs.models import Evidence
from changelogs.policy import EvidenceFact, PolicyError, PolicyRules, ReadinessFacts, readiness_findings
from changelogs.services import policy_create
from releasegate import gate
from tests.changelogs.evidence_files import junit_with_journeys, k6_passing, sarif_clean
from tests.conftest import Cast
from tests.factories import DIGEST, OTHER_DIGEST, JourneyFactory, changelog_make
from tests.releasegate.gate_support import approve, check


def codes(response: Any) -> list[str]:
    assert response.status_code == 200, response.json()
    return [reason["code"] for reason in response.json()["reasons"]]


def _changelog_with_evidence(cast: Cast, digests: dict[str, str]) -> Any:
    """A submitted, approved payments-api change whose evidence names the digests given per kind."""
    JourneyFactory(journey_id="PAY-001", domain=cast.payments, critical=True)
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    client = cast.pipeline.client()
    files = [
        ("sanity", "junit.xml", junit_with_journeys({"PAY-001": "passed"})),
        ("performance", "k6.json", k6_passing()),
        ("security", "semgrep.sarif", sarif_clean()),
    ]
    for kind, name, data in files:
        body = {"kind": kind, "environment": "staging", "file": SimpleUploadedFile(name, data)}
        if kind in digests:
            body["artifact_digest"] = digests[kind]
        response = client.post(f"/api/v1/changelogs/{changelog.id}/evidence/", body, format="multipart")
        assert response.status_code == 201, response.json()
    assert client.post(f"/api/v1/changelogs/{changelog.id}/submit").status_code == 200
    approve(cast, changelog)
    return changelog


@pytest.mark.requirement("PR-02")
def test_evidence_names_the_digest_it_was_produced_against(cast: Cast) -> None:
    changelog = _changelog_with_evidence(cast, {"sanity": DIGEST, "performance": DIGEST})

    listed = cast.pipeline.client().get(f"/api/v1/changelogs/{changelog.id}/evidence/").json()

    assert {item["kind"]: item["artifact_digest"] for item in listed} == {
        "sanity": DIGEST,
        "performance": DIGEST,
        "security": "",
    }
    assert codes(check(cast.pipeline.client())) == ["allowed"]


@pytest.mark.requirement("PR-02")
def test_staging_tests_of_another_digest_do_not_count_at_the_gate(cast: Cast) -> None:
    _changelog_with_evidence(cast, {"sanity": OTHER_DIGEST, "performance": DIGEST})

    found = codes(check(cast.pipeline.client()))

    assert "evidence_other_artifact" in found
    assert "evidence_missing" in found  # the only sanity evidence is of another build
    assert "journey_not_covered" in found


@pytest.mark.requirement("PR-02")
def test_performance_results_of_another_digest_do_not_count_at_the_gate(cast: Cast) -> None:
    _changelog_with_evidence(cast, {"sanity": DIGEST, "performance": OTHER_DIGEST})

    assert codes(check(cast.pipeline.client())) == ["evidence_other_artifact", "evidence_missing"]


@pytest.mark.requirement("PR-02")
def test_both_gate_reads_find_the_evidence_of_another_artifact(cast: Cast) -> None:
    changelog = _changelog_with_evidence(cast, {"sanity": OTHER_DIGEST})
    now = timezone.now()

    question = {"acting_user": cast.pipeline.account, "service_slug": "payments-api", "digest": DIGEST}
    reference = gate.facts_from_orm(**question, changelog_id=None, now=now)

    assert reference is not None
    assert "evidence_other_artifact" in [code for code, _ in reference.facts.findings]
    if connection.vendor == "postgresql":
        assert gate.facts_from_postgresql(**question, changelog_id=None, now=now) == reference
    assert Evidence.objects.get(changelog=changelog, kind="sanity").artifact_digest == OTHER_DIGEST


@pytest.mark.requirement("PR-02")
def test_staging_tests_that_name_no_digest_do_not_count_at_the_gate(cast: Cast) -> None:
    _changelog_with_evidence(cast, {"performance": DIGEST})

    found = codes(check(cast.pipeline.client()))

    assert found[:2] == ["evidence_digest_missing", "evidence_missing"]
    assert "journey_not_covered" in found


@pytest.mark.requirement("PR-02")
def test_both_gate_reads_find_the_evidence_that_names_no_digest(cast: Cast) -> None:
    _changelog_with_evidence(cast, {"sanity": DIGEST})
    now = timezone.now()

    question = {"acting_user": cast.pipeline.account, "service_slug": "payments-api", "digest": DIGEST}
    reference = gate.facts_from_orm(**question, changelog_id=None, now=now)

    assert reference is not None
    assert [code for code, _ in reference.facts.findings][:2] == ["evidence_digest_missing", "evidence_missing"]
    if connection.vendor == "postgresql":
        assert gate.facts_from_postgresql(**question, changelog_id=None, now=now) == reference


@pytest.mark.requirement("PR-02")
def test_a_policy_version_may_count_evidence_that_names_no_digest(cast: Cast) -> None:
    policy_create(
        acting_user=cast.admin, domain=cast.payments, rules={"require_evidence_digest": False}, reason="legacy runners"
    )
    _changelog_with_evidence(cast, {})

    assert codes(check(cast.pipeline.client())) == ["allowed"]


def test_the_digest_rule_is_on_by_default_and_must_be_true_or_false() -> None:
    assert PolicyRules().require_evidence_digest
    assert PolicyRules.from_json({}).require_evidence_digest
    assert not PolicyRules.from_json({"require_evidence_digest": False}).require_evidence_digest
    with pytest.raises(PolicyError, match="require_evidence_digest"):
        PolicyRules.from_json({"require_evidence_digest": "no"})


def test_the_policy_names_the_file_and_both_digests() -> None:
    sanity = EvidenceFact(
        id="e1",
        kind="sanity",
        format="junit",
        file_name="junit.xml",
        environment="staging",
        verdict="pass",
        summary={"journeys": {"PAY-001": "passed"}},
        artifact_digest=OTHER_DIGEST,
    )
    facts = ReadinessFacts(
        changelog_kind="hotfix", domain_critical_journeys=("PAY-001",), evidence=[sanity], artifact_digest=DIGEST
    )

    findings = readiness_findings(PolicyRules(), facts)

    other = [finding for finding in findings if finding.code == "evidence_other_artifact"]
    assert len(other) == 1
    assert other[0].evidence == "e1"
    assert OTHER_DIGEST in other[0].message
    assert DIGEST in other[0].message


@pytest.mark.requirement("PR-02")
def test_a_malformed_artifact_digest_is_refused_and_nothing_is_stored(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    body = {
        "kind": "sanity",
        "environment": "staging",
        "artifact_digest": "latest",
        "file": SimpleUploadedFile("junit.xml", junit_with_journeys({"PAY-001": "passed"})),
    }

    response = cast.pipeline.client().post(f"/api/v1/changelogs/{changelog.id}/evidence/", body, format="multipart")

    assert response.status_code == 400
    assert response.json()["fields"]["artifact_digest"][0]["code"] == "invalid_digest"
    assert not Evidence.objects.filter(changelog=changelog).exists()
