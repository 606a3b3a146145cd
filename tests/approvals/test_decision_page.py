"""The approver sees what they sign: the whole content, what each evidence file says against
the policy's limits, the readiness findings, and for a later revision what changed since the
revision they may already have seen."""

from django.core.files.uploadedfile import SimpleUploadedFile

from changelogs.diff import EvidenceItem, revision_changes
from changelogs.policy import EvidenceFact, PolicyRules, evidence_brief
from tests.changelogs.evidence_files import junit_with_journeys, k6_passing, sarif_clean
from tests.conftest import Cast
from tests.factories import DIGEST, JourneyFactory, changelog_make


def _upload(cast: Cast, changelog_id: str, kind: str, name: str, data: bytes) -> None:
    response = cast.pipeline.client().post(
        f"/api/v1/changelogs/{changelog_id}/evidence/",
        {"kind": kind, "environment": "staging", "artifact_digest": DIGEST, "file": SimpleUploadedFile(name, data)},
        format="multipart",
    )
    assert response.status_code == 201, response.json()


def test_the_decision_page_shows_content_evidence_against_limits_findings_and_changes(cast: Cast) -> None:
    JourneyFactory(journey_id="PAY-001", domain=cast.payments, critical=True)
    JourneyFactory(journey_id="PAY-002", domain=cast.payments, critical=True)
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    _upload(
        cast, changelog.id, "sanity", "journeys.xml", junit_with_journeys({"PAY-001": "passed", "PAY-002": "failed"})
    )
    _upload(cast, changelog.id, "performance", "k6.json", k6_passing())
    pipeline = cast.pipeline.client()
    assert pipeline.post(f"/api/v1/changelogs/{changelog.id}/submit").status_code == 200
    content = changelog.current_revision.content  # type: ignore[union-attr]
    pipeline.patch(
        f"/api/v1/changelogs/{changelog.id}/",
        {"deploy_steps": [*content["deploy_steps"], {"description": "Purge cache", "command": "cdn purge --all"}]},
        format="json",
    )
    _upload(cast, changelog.id, "security", "semgrep.sarif", sarif_clean())
    assert pipeline.post(f"/api/v1/changelogs/{changelog.id}/submit").status_code == 200

    page = cast.session(cast.approver).get(f"/admin/approvals/approval/queue/{changelog.id}/").content.decode()

    # The whole content, including every step's command.
    assert "kubectl rollout restart deploy/payments-api" in page
    assert "cdn purge --all" in page
    # What each file says: tests and journeys; latency and errors against the limits; findings.
    assert "2 tests: 1 passed, 1 failed" in page
    assert "PAY-001 passed, PAY-002 failed" in page
    assert "(limit 500 ms)" in page
    assert "(limit 1.00%)" in page
    assert "0 critical (limit 0), 0 high (limit 0)" in page
    # The readiness findings.
    assert "journey_failed" in page
    # What changed since revision 1, field by field.
    assert "What changed since revision 1" in page
    assert 'data-path="deploy_steps.3.command"' in page
    assert "evidence added" in page
    assert "semgrep.sarif" in page


def test_the_changes_between_revisions_name_every_field_and_file_that_differs() -> None:
    before = {"artifact": {"digest": "sha256:aa", "version": "1"}, "deploy_steps": [{"description": "a"}], "x": None}
    after = {
        "artifact": {"digest": "sha256:bb", "version": "1"},
        "deploy_steps": [{"description": "a"}, {"description": "b", "command": "curl | sh"}],
        "x": None,
    }
    kept, gone, new = (EvidenceItem(sha, "sanity", f"{sha}.xml") for sha in ("1" * 64, "2" * 64, "3" * 64))

    changes = revision_changes(before=before, after=after, evidence_before=[kept, gone], evidence_after=[kept, new])

    assert [(c.path, c.before, c.after) for c in changes.content] == [
        ("artifact.digest", "sha256:aa", "sha256:bb"),
        ("deploy_steps.2.command", "", "curl | sh"),
        ("deploy_steps.2.description", "", "b"),
    ]
    assert changes.evidence_added == (new,)
    assert changes.evidence_removed == (gone,)
    assert not revision_changes(before=before, after=before, evidence_before=[kept], evidence_after=[kept])


def test_an_evidence_brief_reads_each_kind_against_the_policy() -> None:
    rules = PolicyRules(max_p95_ms=300.0, max_error_rate=0.02)

    def brief(kind: str, summary: dict) -> tuple[str, ...]:  # type: ignore[type-arg]
        return evidence_brief(rules, EvidenceFact("e", kind, "f", "file", "staging", "pass", summary))

    assert brief("performance", {"latency_ms": {"p95": 412.5, "p99": 900}, "error_rate": 0.031, "requests": 10}) == (
        "p95 412.5 ms (limit 300 ms), p99 900 ms.",
        "Error rate 3.10% (limit 2.00%) over 10 requests.",
    )
    assert brief("security", {"findings_by_severity": {"high": 2}, "execution_successful": False}) == (
        "Findings: 0 critical (limit 0), 2 high (limit 0), 0 medium, 0 low.",
        "The scanner reports that it did not complete.",
    )
    assert brief("sanity", {"tests": 1, "passed": 1, "journeys": {}})[1] == "Journeys: none tagged."
