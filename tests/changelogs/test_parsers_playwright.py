"""Playwright JSON reports and CTRF: the real run (3 passed, 1 failed after retry, 1 flaky,
1 skipped) and crafted journey variants of it."""

import json
from typing import Any

import pytest

from changelogs.parsers import EvidenceParseError, TestRunSummary, parse
from tests.shared_data import SAMPLES_DIR

REPORT = SAMPLES_DIR / "tests" / "playwright-report.json"
CTRF = SAMPLES_DIR / "tests" / "playwright-ctrf.json"

STATEMENT_MESSAGE = (
    "Error: statement export endpoint\n\nexpect(received).toBe(expected) // Object.is equality\n\n"
    "Expected: 200\nReceived: 404"
)


def _parse(fmt: str, document: Any) -> TestRunSummary:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    summary = parse(fmt, data)
    assert isinstance(summary, TestRunSummary)
    return summary


def _report() -> dict[str, Any]:
    report: dict[str, Any] = json.loads(REPORT.read_text(encoding="utf-8"))
    return report


def _specs(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {spec["title"]: spec for spec in report["suites"][0]["suites"][0]["specs"]}


def _by_name(summary: TestRunSummary) -> dict[str, str]:
    return {case.name: case.outcome for case in summary.cases}


def test_it_counts_the_real_playwright_run() -> None:
    summary = _parse("playwright_json", REPORT.read_bytes())

    assert (summary.tests, summary.passed, summary.failed, summary.errors, summary.skipped, summary.flaky) == (
        6,
        3,
        1,
        0,
        1,
        1,
    )
    assert (summary.tool, summary.tool_version) == ("playwright", "1.65.1")
    assert summary.verdict == "fail"
    assert _by_name(summary) == {
        "health endpoint is UP @smoke": "passed",
        "accounts list returns balance": "passed",
        "login page is served": "passed",
        "statement export exists": "failed",
        "card freeze (disabled in staging)": "skipped",
        "flaky transfer confirmation": "flaky",
    }


def test_it_keeps_the_final_attempt_and_the_error_without_colour_codes() -> None:
    cases = {case.name: case for case in _parse("playwright_json", REPORT.read_bytes()).cases}

    failed = cases["statement export exists"]
    assert failed.suite == "journeys.spec.mjs > critical journeys (API level)"
    assert failed.duration_s == 0.021  # the retry took 21 ms (the first attempt 6 ms)
    assert dict(failed.properties) == {"retries": "1"}
    assert failed.message == STATEMENT_MESSAGE
    assert cases["flaky transfer confirmation"].message is not None
    assert cases["flaky transfer confirmation"].message.startswith("Error: first attempt fails deliberately")


def test_a_smoke_tag_is_not_a_journey() -> None:
    summary = _parse("playwright_json", REPORT.read_bytes())

    assert dict(summary.journey_outcomes) == {}


def test_it_takes_journeys_from_tags_titles_and_annotations() -> None:
    report = _report()
    specs = _specs(report)
    specs["health endpoint is UP @smoke"]["title"] = "health endpoint is UP @smoke @PAY-001"
    specs["health endpoint is UP @smoke"]["tags"] = ["smoke", "PAY-001"]
    specs["accounts list returns balance"]["tags"] = ["@ACC-002"]
    specs["login page is served"]["title"] = "login page is served [LOG-003]"
    specs["statement export exists"]["tests"][0]["annotations"] = [{"type": "journey", "description": "STM-004"}]
    specs["flaky transfer confirmation"]["tests"][0]["annotations"] = [
        {"type": "journey", "description": "TRF-005, TRF-006"}
    ]
    specs["card freeze (disabled in staging)"]["tags"] = ["CARD-007"]

    summary = _parse("playwright_json", report)

    assert dict(summary.journey_outcomes) == {
        "ACC-002": "passed",
        "CARD-007": "skipped",
        "LOG-003": "passed",
        "PAY-001": "passed",
        "STM-004": "failed",
        "TRF-005": "flaky",
        "TRF-006": "flaky",
    }
    health = next(case for case in summary.cases if case.name.startswith("health"))
    assert health.journeys == ("PAY-001",)


def test_an_expected_failure_is_kept_as_skipped_like_an_xfail() -> None:
    report = _report()
    test = _specs(report)["login page is served"]["tests"][0]
    test["expectedStatus"] = "failed"
    test["results"][0]["status"] = "failed"

    summary = _parse("playwright_json", report)

    assert _by_name(summary)["login page is served"] == "skipped"
    assert (summary.passed, summary.skipped) == (2, 2)


def test_an_error_outside_any_test_makes_the_run_fail() -> None:
    report = _report()
    report["errors"] = [{"message": "Error: \u001b[31mconfig\u001b[39m could not be loaded"}]

    summary = _parse("playwright_json", report)

    assert summary.errors == 1
    assert summary.cases[-1].message == "Error: config could not be loaded"


def test_each_project_run_is_a_case_of_its_own() -> None:
    report = _report()
    spec = _specs(report)["accounts list returns balance"]
    chromium, firefox = dict(spec["tests"][0], projectName="chromium"), dict(spec["tests"][0], projectName="firefox")
    firefox["status"] = "unexpected"
    spec["tests"] = [chromium, firefox]

    summary = _parse("playwright_json", report)

    accounts = [case for case in summary.cases if case.name == "accounts list returns balance"]
    assert [(case.properties["project"], case.outcome) for case in accounts] == [
        ("chromium", "passed"),
        ("firefox", "failed"),
    ]


def test_an_unknown_test_status_is_refused_with_its_json_path() -> None:
    report = _report()
    _specs(report)["login page is served"]["tests"][0]["status"] = "green"

    with pytest.raises(EvidenceParseError) as caught:
        _parse("playwright_json", report)

    assert caught.value.code == "invalid_structure"
    assert caught.value.location == "$.suites[0].suites[0].specs[2].tests[0].status"


def test_a_report_without_suites_is_the_wrong_format() -> None:
    with pytest.raises(EvidenceParseError) as caught:
        _parse("playwright_json", {"config": {}, "stats": {}})

    assert caught.value.code == "wrong_format"
    assert caught.value.location == "$"


# --- CTRF -------------------------------------------------------------------------------------


def test_it_counts_the_real_ctrf_report_with_flaky_apart_from_passed() -> None:
    summary = _parse("ctrf_json", CTRF.read_bytes())

    # CTRF's own summary says passed: 4 because it counts the flaky test as passed.
    assert (summary.tests, summary.passed, summary.failed, summary.errors, summary.skipped, summary.flaky) == (
        6,
        3,
        1,
        0,
        1,
        1,
    )
    assert (summary.tool, summary.tool_version) == ("playwright", None)
    assert summary.verdict == "fail"
    cases = {case.name: case for case in summary.cases}
    assert cases["statement export exists"].suite == "journeys.spec.mjs > critical journeys (API level)"
    assert cases["statement export exists"].message == STATEMENT_MESSAGE
    assert cases["statement export exists"].duration_s == 0.021
    assert cases["flaky transfer confirmation"].outcome == "flaky"
    assert cases["flaky transfer confirmation"].message is not None
    assert cases["flaky transfer confirmation"].message.startswith("Error: first attempt fails deliberately")


def test_it_takes_ctrf_journeys_from_tags_names_and_annotations() -> None:
    report = json.loads(CTRF.read_text(encoding="utf-8"))
    tests = {test["name"]: test for test in report["results"]["tests"]}
    tests["health endpoint is UP @smoke"]["tags"] = ["@smoke", "@PAY-001"]
    tests["statement export exists"]["name"] = "statement export exists [STM-004]"
    tests["flaky transfer confirmation"]["extra"]["annotations"] = [{"type": "journey", "description": "TRF-005"}]

    summary = _parse("ctrf_json", report)

    assert dict(summary.journey_outcomes) == {"PAY-001": "passed", "STM-004": "failed", "TRF-005": "flaky"}


def test_a_ctrf_status_other_is_an_error_and_a_suite_array_is_joined() -> None:
    report = {
        "results": {
            "tool": {"name": "jest", "version": "30.0.0"},
            "tests": [
                {"name": "a", "status": "other", "duration": 5, "suite": ["payments", "refunds"]},
                {"name": "b", "status": "pending", "duration": 0},
            ],
        }
    }

    summary = _parse("ctrf_json", report)

    assert [(case.outcome, case.suite) for case in summary.cases] == [
        ("error", "payments > refunds"),
        ("skipped", None),
    ]
    assert summary.tool_version == "30.0.0"


def test_an_unknown_ctrf_status_is_refused_with_its_json_path() -> None:
    report = {"results": {"tool": {"name": "x"}, "tests": [{"name": "a", "status": "ok", "duration": 1}]}}

    with pytest.raises(EvidenceParseError) as caught:
        _parse("ctrf_json", report)

    assert caught.value.code == "invalid_structure"
    assert caught.value.location == "$.results.tests[0].status"
