"""Playwright's JSON reporter (``reporter: [["json", {outputFile: ...}]]``).

Shape: ``{config, suites: [{title, specs: [{title, tags, tests: [{status, expectedStatus,
annotations, projectName, results: [{status, duration, retry, error}]}]}], suites: [...]}],
errors, stats}``. One case per test (a spec runs once per project). Outcome from the test's
final ``status``:

* ``expected`` -> ``passed``, except a test marked ``test.fail()`` (``expectedStatus`` ``failed``),
  which is kept as ``skipped`` like a pytest xfail: an expected failure covers nothing (the
  JUnit parser reads Playwright's JUnit output of the same test the same way; see
  docs/evidence.md, "Expected failures");
* ``unexpected`` -> ``failed`` (all attempts failed, retries included; a ``test.fail()`` test
  that passed is unexpected too);
* ``flaky`` -> ``flaky`` (failed, then passed on a retry);
* ``skipped`` -> ``skipped``.

Errors outside any test (the top-level ``errors`` array: a broken config, a crashed worker)
become one ``error`` case each, so the run cannot pass with them. Journeys come from the
spec's ``tags`` (Playwright strips the ``@``: title ``... @PAY-001`` gives tag ``PAY-001``),
``[PAY-001]``/``@PAY-001`` in the title, and annotations of type ``journey``.
"""

from typing import Any

from changelogs.parsers._common import (
    JsonObject,
    as_list,
    as_object,
    as_str,
    check_count,
    clean_message,
    index_path,
    key_path,
    load_json_report,
    one_of,
    opt_list,
    opt_number,
    opt_object,
    opt_str,
)
from changelogs.parsers.journeys import annotation_journeys, journey_tags_in_title, merge_journeys, tag_journeys
from changelogs.parsers.summaries import EXPECTED_FAILURE_MESSAGE, Outcome, TestCaseResult, TestRunSummary

PARSER_VERSION = "playwright/1"
FORMAT = "playwright_json"

_STATUSES = ("expected", "flaky", "skipped", "unexpected")


def parse(data: bytes) -> TestRunSummary:
    document = load_json_report(data, what="Playwright JSON report", member="suites", member_type=list)
    cases: list[TestCaseResult] = []
    stack: list[tuple[Any, str, tuple[str, ...]]] = [
        (suite, index_path("$.suites", i), ()) for i, suite in enumerate(as_list(document["suites"], "$.suites"))
    ]
    stack.reverse()
    while stack:
        raw_suite, path, titles = stack.pop()
        suite = as_object(raw_suite, path)
        title = opt_str(suite, "title", path) or ""
        suite_titles = (*titles, title) if title else titles
        for i, spec in enumerate(opt_list(suite, "specs", path)):
            cases.extend(_spec_cases(spec, index_path(key_path(path, "specs"), i), suite_titles))
            check_count(len(cases), "test cases")
        children = opt_list(suite, "suites", path)
        stack.extend(
            (child, index_path(key_path(path, "suites"), i), suite_titles)
            for i, child in reversed(list(enumerate(children)))
        )
    for i, raw_error in enumerate(opt_list(document, "errors", "$")):
        error = as_object(raw_error, index_path("$.errors", i))
        cases.append(
            TestCaseResult(
                name="error outside any test",
                suite=None,
                classname=None,
                outcome="error",
                duration_s=None,
                message=clean_message(opt_str(error, "message", index_path("$.errors", i))),
            )
        )
    config = opt_object(document, "config", "$")
    notes = () if cases else ("The report contains no tests.",)
    return TestRunSummary(
        format=FORMAT,
        parser_version=PARSER_VERSION,
        tool="playwright",
        tool_version=opt_str(config, "version", "$.config"),
        cases=tuple(cases),
        notes=notes,
    )


def _spec_cases(raw_spec: Any, path: str, suite_titles: tuple[str, ...]) -> list[TestCaseResult]:
    spec = as_object(raw_spec, path)
    title = as_str(spec.get("title"), key_path(path, "title"))
    spec_journeys = merge_journeys(tag_journeys(spec, path), journey_tags_in_title(title))
    cases = []
    for i, raw_test in enumerate(opt_list(spec, "tests", path)):
        test_path = index_path(key_path(path, "tests"), i)
        test = as_object(raw_test, test_path)
        cases.append(_test_case(test, test_path, title, suite_titles, spec_journeys))
    return cases


def _test_case(
    test: JsonObject,
    path: str,
    title: str,
    suite_titles: tuple[str, ...],
    spec_journeys: tuple[str, ...],
) -> TestCaseResult:
    status_path = key_path(path, "status")
    status = one_of(as_str(test.get("status"), status_path), _STATUSES, status_path)
    expected_status = opt_str(test, "expectedStatus", path)
    results = [
        as_object(result, index_path(key_path(path, "results"), i))
        for i, result in enumerate(opt_list(test, "results", path))
    ]
    journeys = merge_journeys(spec_journeys, annotation_journeys(test, path))
    for i, result in enumerate(results):
        journeys = merge_journeys(journeys, annotation_journeys(result, index_path(key_path(path, "results"), i)))

    outcome: Outcome
    message: str | None = None
    if status == "expected" and expected_status == "failed":
        outcome, message = "skipped", EXPECTED_FAILURE_MESSAGE
    elif status == "expected":
        outcome = "passed"
    elif status == "unexpected":
        outcome = "failed"
    elif status == "flaky":
        outcome = "flaky"
    else:
        outcome = "skipped"
    if outcome in ("failed", "flaky"):
        message = _first_error(results, path)

    duration_s = None
    if results:
        last = results[-1]
        duration_ms = opt_number(last, "duration", index_path(key_path(path, "results"), len(results) - 1))
        duration_s = None if duration_ms is None else duration_ms / 1000
    properties = {"retries": str(max(len(results) - 1, 0))}
    project = opt_str(test, "projectName", path)
    if project:
        properties["project"] = project
    return TestCaseResult(
        name=title,
        suite=" > ".join(suite_titles) or None,
        classname=None,
        outcome=outcome,
        duration_s=duration_s,
        journeys=journeys,
        properties=properties,
        message=message,
    )


def _first_error(results: list[JsonObject], path: str) -> str | None:
    for i, result in enumerate(results):
        result_path = index_path(key_path(path, "results"), i)
        error = result.get("error")
        if isinstance(error, dict):
            message = opt_str(error, "message", key_path(result_path, "error"))
            if message:
                return clean_message(message)
    return None
