"""SARIF from bandit, ruff and semgrep (and pip-audit's JSON, the other security scanner
sample): real files with hand-counted findings, then the severity rules one by one."""

import copy
import json
from typing import Any

import pytest

from changelogs.parsers import DependencyAuditSummary, EvidenceParseError, SecuritySummary, parse
from changelogs.parsers.sarif import severity_for
from tests.shared_data import SAMPLES_DIR

SECURITY_DIR = SAMPLES_DIR / "security"


def _sarif(document: Any) -> SecuritySummary:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    summary = parse("sarif", data)
    assert isinstance(summary, SecuritySummary)
    return summary


def _sample(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SECURITY_DIR / name).read_text(encoding="utf-8"))
    return document


def _log(*results: dict[str, Any], rules: list[dict[str, Any]] | None = None, **run: Any) -> dict[str, Any]:
    return {
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "scanner", "rules": rules or []}}, "results": list(results), **run}],
    }


def _result(**fields: Any) -> dict[str, Any]:
    return {"ruleId": "R1", "message": {"text": "finding"}, **fields}


# --- the real files ---------------------------------------------------------------------------


def test_it_summarises_the_bandit_log() -> None:
    summary = _sarif((SECURITY_DIR / "bandit.sarif").read_bytes())

    assert [(tool.name, tool.version) for tool in summary.tools] == [("Bandit", "1.9.4")]
    # level error: B324, B602; no level (SARIF default warning): B301, B506, B608;
    # level note: B403, B404, B105. Matches bandit's own SEVERITY.HIGH/MEDIUM/LOW = 2/3/3.
    assert dict(summary.findings_by_severity) == {"critical": 0, "high": 2, "medium": 3, "low": 3, "note": 0}
    assert len(summary.results) == 8
    assert summary.suppressed == 0
    assert summary.verdict == "fail"
    by_rule = {result.rule_id: result for result in summary.results}
    assert (by_rule["B602"].level, by_rule["B602"].severity) == ("error", "high")
    assert (by_rule["B301"].level, by_rule["B301"].severity) == ("warning", "medium")
    assert (by_rule["B105"].level, by_rule["B105"].severity) == ("note", "low")
    assert by_rule["B602"].location == "demoapp/payments.py:24"
    assert by_rule["B602"].message == "subprocess call with shell=True identified, security issue."
    assert by_rule["B602"].security_severity is None


def test_it_summarises_the_ruff_log_although_its_rules_say_disabled() -> None:
    summary = _sarif((SECURITY_DIR / "ruff.sarif").read_bytes())

    assert [(tool.name, tool.version) for tool in summary.tools] == [("ruff", "0.17.6")]
    # Six results, all level error; the rules' defaultConfiguration.enabled=false does not
    # hide results that were reported.
    assert dict(summary.findings_by_severity) == {"critical": 0, "high": 6, "medium": 0, "low": 0, "note": 0}
    assert [result.rule_id for result in summary.results] == ["S105", "S301", "S506", "S324", "S602", "S608"]
    assert summary.results[0].location == "file:///builds/bank/payments-api/demoapp/payments.py:8"
    assert summary.verdict == "fail"


def test_it_summarises_the_semgrep_log_that_exited_zero_with_findings() -> None:
    summary = _sarif((SECURITY_DIR / "semgrep.sarif").read_bytes())

    # The driver has no "version", only "semanticVersion".
    assert [(tool.name, tool.version) for tool in summary.tools] == [("Semgrep OSS", "1.185.0")]
    # pickle-loads: rule security-severity "9.8" -> critical; shell-true: rule default level
    # warning -> medium; md5: rule default level note -> low. Results carry no level or ruleIndex.
    assert dict(summary.findings_by_severity) == {"critical": 1, "high": 0, "medium": 1, "low": 1, "note": 0}
    by_rule = {result.rule_id: result for result in summary.results}
    assert by_rule["python-pickle-loads"].security_severity == 9.8
    assert by_rule["python-pickle-loads"].level == "error"
    assert by_rule["python-subprocess-shell-true"].level == "warning"
    assert by_rule["python-weak-hash-md5"].level == "note"
    assert summary.verdict == "fail"


def test_a_log_may_hold_several_runs_of_several_tools() -> None:
    bandit, semgrep = _sample("bandit.sarif"), _sample("semgrep.sarif")
    combined = {"version": "2.1.0", "runs": bandit["runs"] + semgrep["runs"]}

    summary = _sarif(combined)

    assert [tool.name for tool in summary.tools] == ["Bandit", "Semgrep OSS"]
    assert dict(summary.findings_by_severity) == {"critical": 1, "high": 2, "medium": 4, "low": 4, "note": 0}
    assert {result.tool for result in summary.results} == {"Bandit", "Semgrep OSS"}


def test_its_summary_is_plain_json() -> None:
    data = _sarif((SECURITY_DIR / "semgrep.sarif").read_bytes()).to_dict()

    assert json.loads(json.dumps(data)) == data
    assert data["kind"] == "security"
    assert data["tools"] == [{"name": "Semgrep OSS", "version": "1.185.0"}]
    assert data["findings_by_severity"] == {"critical": 1, "high": 0, "medium": 1, "low": 1, "note": 0}
    assert data["results"][0] == {
        "tool": "Semgrep OSS",
        "rule_id": "python-pickle-loads",
        "level": "error",
        "severity": "critical",
        "security_severity": 9.8,
        "message": "Untrusted data passed to pickle.loads can execute arbitrary code.",
        "location": "demoapp/payments.py:12",
        "baseline_state": None,
        "suppressed": False,
    }


# --- severity ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "level", "expected"),
    [
        (10.0, "note", "critical"),
        (9.0, "note", "critical"),
        (8.9, "note", "high"),
        (7.0, "none", "high"),
        (6.9, "error", "medium"),
        (4.0, "error", "medium"),
        (3.9, "error", "low"),
        (0.1, "error", "low"),
        (0.0, "error", "note"),
        (None, "error", "high"),
        (None, "warning", "medium"),
        (None, "note", "low"),
        (None, "none", "note"),
    ],
)
def test_it_maps_scores_and_levels_to_severities_as_github_shows_them(
    score: float | None, level: Any, expected: str
) -> None:
    assert severity_for(score, level) == expected


def test_a_result_score_wins_over_the_rule_score() -> None:
    rules = [{"id": "R1", "properties": {"security-severity": "9.1"}}]

    summary = _sarif(_log(_result(properties={"security-severity": 5.0}), rules=rules))

    assert summary.results[0].severity == "medium"


def test_a_rule_found_by_index_in_an_extension_gives_its_score() -> None:
    log = _log(_result(ruleId="ext/1", rule={"index": 0, "toolComponent": {"index": 0}}))
    log["runs"][0]["tool"]["extensions"] = [
        {"name": "codeql/python-queries", "rules": [{"id": "ext/1", "properties": {"security-severity": "7.5"}}]}
    ]

    summary = _sarif(log)

    assert (summary.results[0].severity, summary.results[0].security_severity) == ("high", 7.5)


def test_a_rule_found_by_id_in_an_extension_gives_its_default_level() -> None:
    log = _log(_result(ruleId="X9"))
    log["runs"][0]["tool"]["extensions"] = [
        {"name": "pack", "rules": [{"id": "X9", "defaultConfiguration": {"level": "error"}}]}
    ]

    assert _sarif(log).results[0].severity == "high"


def test_a_missing_level_defaults_to_warning() -> None:
    assert _sarif(_log(_result())).results[0].severity == "medium"


def test_a_result_of_kind_pass_or_level_none_is_only_a_note() -> None:
    rules: list[dict[str, Any]] = [{"id": "R1", "properties": {"security-severity": "9.8"}}, {"id": "R2"}]
    summary = _sarif(
        _log(
            _result(kind="pass"),
            _result(ruleId="R2", level="none"),
            _result(ruleId="R2", kind="informational", level="error"),
            rules=rules,
        )
    )

    assert [(result.level, result.severity) for result in summary.results] == [
        ("none", "note"),
        ("none", "note"),
        ("none", "note"),
    ]
    assert summary.verdict == "pass"


def test_suppressed_and_fixed_results_are_not_counted() -> None:
    summary = _sarif(
        _log(
            _result(level="error", suppressions=[{"kind": "inSource"}]),
            _result(level="error", suppressions=[{"kind": "external", "status": "accepted"}]),
            _result(level="error", suppressions=[{"kind": "external", "status": "underReview"}]),
            _result(level="error", suppressions=[{"kind": "external", "status": "rejected"}]),
            _result(level="error", baselineState="absent"),
            _result(level="warning", baselineState="unchanged"),
            _result(level="warning", baselineState="updated"),
            _result(level="note", baselineState="new"),
        )
    )

    # under review and rejected suppressions do not suppress: 2 high stay open.
    assert dict(summary.findings_by_severity) == {"critical": 0, "high": 2, "medium": 2, "low": 1, "note": 0}
    assert (summary.suppressed, summary.fixed) == (2, 1)


def test_only_open_low_and_medium_findings_pass() -> None:
    summary = _sarif(_log(_result(level="warning"), _result(level="error", baselineState="absent")))

    assert summary.verdict == "pass"


def test_a_scanner_that_did_not_complete_fails() -> None:
    failed_run = _log(invocations=[{"executionSuccessful": False}])
    no_results = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "scanner"}}}]}

    assert _sarif(failed_run).verdict == "fail"
    assert _sarif(failed_run).notes == ("scanner reports that its run did not complete successfully.",)
    assert _sarif(no_results).verdict == "fail"
    assert not _sarif(no_results).execution_successful


def test_it_fills_message_arguments_and_falls_back_to_logical_locations() -> None:
    result = _result(
        message={"text": "{0} flows into {1}", "arguments": ["user input", "eval"]},
        locations=[{"logicalLocations": [{"fullyQualifiedName": "payments.ping"}]}],
    )

    summary = _sarif(_log(result))

    assert summary.results[0].message == "user input flows into eval"
    assert summary.results[0].location == "payments.ping"


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"level": "fatal"}, "$.runs[0].results[0].level"),
        ({"level": 3}, "$.runs[0].results[0].level"),
        ({"properties": {"security-severity": "high"}}, '$.runs[0].results[0].properties["security-severity"]'),
        ({"properties": {"security-severity": "11"}}, '$.runs[0].results[0].properties["security-severity"]'),
        ({"baselineState": "gone"}, "$.runs[0].results[0].baselineState"),
        ({"ruleIndex": 4}, "$.runs[0].results[0].ruleIndex"),
        ({"suppressions": {}}, "$.runs[0].results[0].suppressions"),
    ],
)
def test_it_refuses_impossible_result_fields_with_their_json_path(change: dict[str, Any], location: str) -> None:
    with pytest.raises(EvidenceParseError) as caught:
        _sarif(_log(_result(**change)))

    assert caught.value.code == "invalid_structure"
    assert caught.value.location == location


def test_a_rule_score_that_is_not_a_number_is_refused_at_the_rule() -> None:
    rules = [{"id": "R1", "properties": {"security-severity": "critical"}}]

    with pytest.raises(EvidenceParseError) as caught:
        _sarif(_log(_result(), rules=rules))

    assert caught.value.location == '$.runs[0].tool.driver.rules[0].properties["security-severity"]'


def test_it_refuses_sarif_versions_other_than_2_1_0() -> None:
    log = copy.deepcopy(_sample("bandit.sarif"))
    log["version"] = "2.0.0"

    with pytest.raises(EvidenceParseError) as caught:
        _sarif(log)

    assert (caught.value.code, caught.value.location) == ("unsupported_version", "$.version")


def test_a_run_without_a_tool_name_is_refused() -> None:
    with pytest.raises(EvidenceParseError) as caught:
        _sarif({"version": "2.1.0", "runs": [{"tool": {"driver": {}}, "results": []}]})

    assert (caught.value.code, caught.value.location) == ("invalid_structure", "$.runs[0].tool.driver.name")


# --- pip-audit --------------------------------------------------------------------------------


def test_a_pip_audit_report_that_audited_nothing_does_not_pass() -> None:
    summary = parse("pip_audit", (SECURITY_DIR / "pip-audit-unaudited.json").read_bytes())

    assert isinstance(summary, DependencyAuditSummary)
    # Exit code 0 and "No known vulnerabilities found", yet every dependency was skipped.
    assert (len(summary.dependencies), summary.audited, summary.skipped, summary.vulnerabilities) == (3, 0, 3, 0)
    assert [dependency.name for dependency in summary.dependencies] == ["requests", "urllib3", "jinja2"]
    assert summary.dependencies[0].skip_reason == (
        "Dependency not found on PyPI and could not be audited: requests (2.25.1)"
    )
    assert summary.verdict == "fail"
    assert summary.to_dict()["skipped"] == 3


def test_a_pip_audit_report_passes_only_when_everything_was_audited_and_clean() -> None:
    clean = {"dependencies": [{"name": "idna", "version": "3.10", "vulns": []}], "fixes": []}
    vulnerable = {
        "dependencies": [
            {
                "name": "urllib3",
                "version": "1.26.4",
                "vulns": [{"id": "PYSEC-2021-108", "fix_versions": ["1.26.5"], "aliases": ["CVE-2021-33503"]}],
            }
        ],
        "fixes": [],
    }

    clean_summary = parse("pip_audit", json.dumps(clean).encode())
    vulnerable_summary = parse("pip_audit", json.dumps(vulnerable).encode())

    assert clean_summary.verdict == "pass"
    assert vulnerable_summary.verdict == "fail"
    assert vulnerable_summary.to_dict()["items"][0]["vulnerabilities"] == [
        {"id": "PYSEC-2021-108", "aliases": ["CVE-2021-33503"], "fix_versions": ["1.26.5"]}
    ]
