"""CTRF JSON (Common Test Report Format, https://ctrf.io), e.g. playwright-ctrf-json-reporter.

Shape: ``{reportFormat: "CTRF", results: {tool: {name, version?}, summary, tests: [{name,
status, duration (ms), suite?, tags?, flaky?, retries?, message?, extra?}]}}``. Outcome:
``passed`` -> ``passed`` (``flaky`` if the test says ``flaky: true``), ``failed`` -> ``failed``,
``skipped``/``pending`` -> ``skipped``, ``other`` -> ``error`` (a status the tool could not map,
such as an interrupted or timed-out test: not a pass). CTRF's own ``summary.passed`` counts
flaky tests as passed; this summary counts them apart, as Playwright's JSON report does.

Journeys: ``tags`` (``@PAY-001`` or ``PAY-001``), ``[PAY-001]``/``@PAY-001`` in the name, and
``extra.annotations`` of type ``journey`` (which the Playwright CTRF reporter copies through).
"""

from changelogs.parsers._common import (
    JsonObject,
    as_bool,
    as_list,
    as_object,
    as_str,
    clean_message,
    fail,
    index_path,
    key_path,
    load_json,
    one_of,
    opt_list,
    opt_number,
    opt_object,
    opt_str,
)
from changelogs.parsers.errors import ParseErrorCode
from changelogs.parsers.journeys import annotation_journeys, journey_tags_in_title, merge_journeys, tag_journeys
from changelogs.parsers.summaries import Outcome, TestCaseResult, TestRunSummary

PARSER_VERSION = "ctrf/1"
FORMAT = "ctrf_json"

_OUTCOMES: dict[str, Outcome] = {
    "passed": "passed",
    "failed": "failed",
    "skipped": "skipped",
    "pending": "skipped",
    "other": "error",
}


def parse(data: bytes) -> TestRunSummary:
    document = load_json(data, what="CTRF report")
    results = document.get("results") if isinstance(document, dict) else None
    if not isinstance(results, dict) or not isinstance(results.get("tool"), dict):
        fail(
            ParseErrorCode.WRONG_FORMAT,
            "This is not a CTRF report: it has no 'results.tool' object.",
            "$",
        )
    tool = as_object(results["tool"], "$.results.tool")
    tool_name = as_str(tool.get("name"), "$.results.tool.name")
    tests = as_list(results.get("tests"), "$.results.tests")  # refuses more than MAX_ITEMS tests
    cases = tuple(_case(raw, index_path("$.results.tests", i)) for i, raw in enumerate(tests))
    return TestRunSummary(
        format=FORMAT,
        parser_version=PARSER_VERSION,
        tool=tool_name,
        tool_version=opt_str(tool, "version", "$.results.tool"),
        cases=cases,
        notes=() if cases else ("The report contains no tests.",),
    )


def _suite(test: JsonObject, path: str) -> str | None:
    value = test.get("suite")
    if value is None:
        return None
    if isinstance(value, list):  # newer CTRF writes the suite path as an array
        parts = [as_str(part, index_path(key_path(path, "suite"), i)) for i, part in enumerate(value)]
        return " > ".join(parts) or None
    return as_str(value, key_path(path, "suite")) or None


def _case(raw: object, path: str) -> TestCaseResult:
    test = as_object(raw, path)
    name = as_str(test.get("name"), key_path(path, "name"))
    status_path = key_path(path, "status")
    outcome = _OUTCOMES[one_of(as_str(test.get("status"), status_path), _OUTCOMES, status_path)]
    flaky = test.get("flaky")
    if outcome == "passed" and flaky is not None and as_bool(flaky, key_path(path, "flaky")):
        outcome = "flaky"
    journeys = merge_journeys(
        tag_journeys(test, path),
        journey_tags_in_title(name),
        annotation_journeys(opt_object(test, "extra", path), key_path(path, "extra")),
    )

    duration_ms = opt_number(test, "duration", path)
    properties: dict[str, str] = {}
    retries = test.get("retries")
    if isinstance(retries, int) and not isinstance(retries, bool):
        properties["retries"] = str(retries)
    message = None
    if outcome in ("failed", "error", "flaky"):
        message = clean_message(opt_str(test, "message", path)) or _retry_message(test, path)
    return TestCaseResult(
        name=name,
        suite=_suite(test, path),
        classname=None,
        outcome=outcome,
        duration_s=None if duration_ms is None else duration_ms / 1000,
        journeys=journeys,
        properties=properties,
        message=message,
    )


def _retry_message(test: JsonObject, path: str) -> str | None:
    attempts_path = key_path(path, "retryAttempts")
    for i, raw_attempt in enumerate(opt_list(test, "retryAttempts", path)):
        attempt_path = index_path(attempts_path, i)
        message = clean_message(opt_str(as_object(raw_attempt, attempt_path), "message", attempt_path))
        if message:
            return message
    return None
