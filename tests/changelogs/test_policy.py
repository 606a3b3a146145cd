"""The evidence policy as a pure function: each finding from a minimal case, none for a
complete changelog with passing evidence."""

from typing import Any

import pytest

from changelogs.policy import EvidenceFact, FindingCode, PolicyError, PolicyRules, ReadinessFacts, readiness_findings

CRITICAL = ("PAY-001", "PAY-002")
BUILD = "sha256:" + "b" * 64  # the changelog's artifact, which the tests and measurements name (PR-02)


def sanity(
    journeys: dict[str, str] | None = None,
    *,
    verdict: str = "pass",
    environment: str = "staging",
    id: str = "s",
    digest: str = BUILD,
) -> EvidenceFact:
    return EvidenceFact(
        id=id,
        kind="sanity",
        format="junit",
        file_name="junit.xml",
        environment=environment,
        verdict=verdict,
        summary={"journeys": {"PAY-001": "passed", "PAY-002": "passed"} if journeys is None else journeys},
        artifact_digest=digest,
    )


def performance(
    *, p95: float | None = 120.0, error_rate: float | None = 0.0, verdict: str = "pass", environment: str = "staging"
) -> EvidenceFact:
    return EvidenceFact(
        id="p",
        kind="performance",
        format="k6_summary",
        file_name="k6.json",
        environment=environment,
        verdict=verdict,
        summary={"latency_ms": {"p95": p95}, "error_rate": error_rate},
        artifact_digest=BUILD,
    )


def security(
    findings: dict[str, int] | None = None, *, fmt: str = "sarif", verdict: str = "pass", complete: bool = True
) -> EvidenceFact:
    return EvidenceFact(
        id="x",
        kind="security",
        format=fmt,
        file_name="scan.sarif",
        environment="",
        verdict=verdict,
        summary={"findings_by_severity": findings or {}, "execution_successful": complete},
    )


def complete(*evidence: EvidenceFact, kind: str = "train") -> ReadinessFacts:
    return ReadinessFacts(
        changelog_kind=kind, domain_critical_journeys=CRITICAL, evidence=list(evidence), artifact_digest=BUILD
    )


def codes(facts: ReadinessFacts, rules: PolicyRules | None = None) -> list[str]:
    return [str(finding.code) for finding in readiness_findings(rules or PolicyRules(), facts)]


def test_a_complete_changelog_with_passing_evidence_has_no_findings() -> None:
    assert codes(complete(sanity(), performance(), security({"medium": 3, "low": 9}))) == []


def test_a_hotfix_needs_no_performance_evidence_by_default() -> None:
    assert codes(complete(sanity(), security(), kind="hotfix")) == []


CASES: list[tuple[str, ReadinessFacts, list[str]]] = [
    (
        "no sanity evidence",
        complete(performance(), security()),
        ["evidence_missing", "journey_not_covered", "journey_not_covered"],
    ),
    ("no performance evidence", complete(sanity(), security()), ["evidence_missing"]),
    (
        "staging tests that name no digest",
        complete(sanity(digest=""), performance(), security()),
        ["evidence_digest_missing", "evidence_missing", "journey_not_covered", "journey_not_covered"],
    ),
    ("no security evidence", complete(sanity(), performance()), ["evidence_missing"]),
    (
        "failed tests",
        complete(sanity({"PAY-001": "passed", "PAY-002": "passed"}, verdict="fail"), performance(), security()),
        ["evidence_failed"],
    ),
    (
        "a journey without a test",
        complete(sanity({"PAY-001": "passed"}), performance(), security()),
        ["journey_not_covered"],
    ),
    (
        "a journey only skipped",
        complete(sanity({"PAY-001": "passed", "PAY-002": "skipped"}), performance(), security()),
        ["journey_not_covered"],
    ),
    (
        "a failed journey",
        complete(sanity({"PAY-001": "failed", "PAY-002": "passed"}), performance(), security()),
        ["journey_failed"],
    ),
    (
        "a journey that passed in one file and failed in another",
        complete(
            sanity({"PAY-001": "passed", "PAY-002": "passed"}),
            sanity({"PAY-001": "failed"}, id="s2"),
            performance(),
            security(),
        ),
        ["journey_failed"],
    ),
    (
        "a flaky journey counts as covered",
        complete(sanity({"PAY-001": "flaky", "PAY-002": "passed"}), performance(), security()),
        [],
    ),
    (
        "sanity tests from the wrong environment",
        complete(sanity(environment="dev"), performance(), security()),
        ["evidence_wrong_environment", "journey_not_covered", "journey_not_covered"],
    ),
    ("p95 over the limit", complete(sanity(), performance(p95=650.0), security()), ["threshold_exceeded"]),
    ("error rate over the limit", complete(sanity(), performance(error_rate=0.05), security()), ["threshold_exceeded"]),
    ("no p95 in the results", complete(sanity(), performance(p95=None), security()), ["threshold_not_measured"]),
    (
        "the tool's own thresholds crossed",
        complete(sanity(), performance(verdict="fail"), security()),
        ["evidence_failed"],
    ),
    ("a high finding", complete(sanity(), performance(), security({"high": 1})), ["security_findings_exceeded"]),
    (
        "a critical and a high finding",
        complete(sanity(), performance(), security({"critical": 1, "high": 2})),
        ["security_findings_exceeded", "security_findings_exceeded"],
    ),
    (
        "a scan that did not complete",
        complete(sanity(), performance(), security(complete=False, verdict="fail")),
        ["evidence_failed"],
    ),
    (
        "a dependency audit that audited nothing",
        complete(sanity(), performance(), security(fmt="pip_audit", verdict="fail")),
        ["evidence_failed"],
    ),
]


@pytest.mark.parametrize(("case", "facts", "expected"), CASES, ids=[case for case, _, _ in CASES])
@pytest.mark.requirement("PR-01")
def test_each_finding_comes_from_a_minimal_case(case: str, facts: ReadinessFacts, expected: list[str]) -> None:
    assert sorted(codes(facts)) == sorted(expected)


def test_findings_name_the_evidence_and_journey_they_are_about() -> None:
    findings = readiness_findings(
        PolicyRules(), complete(sanity({"PAY-001": "failed"}), performance(p95=900), security())
    )

    by_code = {finding.code: finding for finding in findings}
    assert by_code[FindingCode.JOURNEY_FAILED].journey == "PAY-001"
    assert by_code[FindingCode.JOURNEY_NOT_COVERED].journey == "PAY-002"
    assert by_code[FindingCode.THRESHOLD_EXCEEDED].evidence == "p"
    assert "900 ms is over the limit of 500 ms" in by_code[FindingCode.THRESHOLD_EXCEEDED].message


def test_the_policy_can_relax_and_tighten_limits() -> None:
    lenient = PolicyRules.from_json({"max_p95_ms": 1000, "max_security_findings": {"high": 3}})
    strict = PolicyRules.from_json({"max_security_findings": {"medium": 0}})
    facts = complete(sanity(), performance(p95=650.0), security({"high": 2, "medium": 1}))

    assert codes(facts, lenient) == []
    assert sorted(codes(facts, strict)) == [
        "security_findings_exceeded",
        "security_findings_exceeded",
        "threshold_exceeded",
    ]


def test_the_policy_can_name_the_journeys_that_must_be_covered() -> None:
    only_one = PolicyRules.from_json({"critical_journeys": ["PAY-001"]})

    assert codes(complete(sanity({"PAY-001": "passed"}), performance(), security()), only_one) == []


def test_a_limit_of_null_switches_a_check_off() -> None:
    no_latency_limit = PolicyRules.from_json({"max_p95_ms": None})

    assert codes(complete(sanity(), performance(p95=None), security()), no_latency_limit) == []


@pytest.mark.parametrize(
    "rules",
    [
        {"max_p95": 100},
        {"max_p95_ms": "fast"},
        {"max_p95_ms": -1},
        {"required_evidence": {"train": ["sanity"]}},
        {"required_evidence": {"train": ["vibes"], "hotfix": []}},
        {"max_security_findings": {"severe": 0}},
        {"max_security_findings": {"high": -1}},
        {"required_approvals": {"low": 1}},
        {"required_approvals": {"low": 0, "medium": 1, "high": 2, "critical": 2}},
        {"approval_validity_days": 0},
        {"sanity_environments": "staging"},
    ],
)
def test_bad_rules_are_refused_with_the_key_named(rules: dict[str, Any]) -> None:
    with pytest.raises(PolicyError) as refused:
        PolicyRules.from_json(rules)

    assert any(key in str(refused.value) for key in (*rules, "unknown rule"))


def test_rules_round_trip_through_json() -> None:
    rules = PolicyRules.from_json({"max_p95_ms": 250, "critical_journeys": ["PAY-001"]})

    assert PolicyRules.from_json(rules.to_json()) == rules


def test_naming_one_severity_keeps_the_defaults_of_the_others() -> None:
    rules = PolicyRules.from_json({"max_security_findings": {"medium": 5}})

    assert rules.max_security_findings == {"critical": 0, "high": 0, "medium": 5, "low": None}
