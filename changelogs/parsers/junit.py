"""JUnit XML test reports (pytest xunit1/xunit2, Node's test runner, Playwright, Surefire...).

Root ``<testsuites>`` or ``<testsuite>``; suites may nest, and test cases may sit directly
under ``<testsuites>`` (Node's runner puts top-level tests there). Counts come from the
``<testcase>`` elements found, not from the ``tests``/``failures`` attributes; a suite whose
declared totals disagree gets a note.

Outcome of a test case, first match wins:

* ``<error>`` -> ``error`` (pytest uses it for setup/teardown errors and for a test module
  that failed to import: the "collection error" case);
* ``<failure>`` -> ``failed``;
* ``<skipped>`` -> ``skipped`` (pytest writes xfail as ``<skipped type="pytest.xfail">``, Node
  writes ``todo`` tests as skipped: both stay skipped, they prove nothing);
* a case that Playwright's JUnit reporter marks with the ``fail`` annotation property
  (``test.fail()``) and that did not fail the run -> ``skipped``: it failed as expected, and an
  expected failure covers nothing (the same rule as the Playwright JSON parser's; see
  docs/evidence.md, "Expected failures");
* Surefire/pytest-rerunfailures markers ``<flakyFailure>``, ``<flakyError>``, ``<rerunFailure>``,
  ``<rerunError>`` without a final failure -> ``flaky`` (failed, then passed on rerun);
* otherwise ``passed``.

Journeys of a case: ids in its ``journey``/``journeys`` properties, ``[PAY-001]`` or ``@PAY-001``
tags in its name, plus ``journey`` properties of the suites around it. Playwright's JUnit
reporter writes annotations as properties, so ``{type: "journey", description: "PAY-001"}``
arrives here as ``<property name="journey" value="PAY-001"/>``.
"""

import math
from xml.etree.ElementTree import Element

from changelogs.parsers._common import (
    check_count,
    clean_message,
    fail,
    load_xml,
    local_name,
)
from changelogs.parsers.errors import ParseErrorCode
from changelogs.parsers.journeys import journey_ids_in, journey_tags_in_title, merge_journeys
from changelogs.parsers.summaries import EXPECTED_FAILURE_MESSAGE, Outcome, TestCaseResult, TestRunSummary

PARSER_VERSION = "junit/2"
FORMAT = "junit"

_JOURNEY_PROPERTIES = {"journey", "journeys"}
_FLAKY_MARKERS = {"flakyFailure", "flakyError", "rerunFailure", "rerunError"}


def parse(data: bytes) -> TestRunSummary:
    root = load_xml(data, what="JUnit", item_tag="testcase", item_label="test cases")
    root_name = local_name(root)
    if root_name not in ("testsuites", "testsuite"):
        fail(
            ParseErrorCode.WRONG_FORMAT,
            f"The XML root element is <{root_name}>, not <testsuites> or <testsuite>; this is not a JUnit report.",
        )
    walker = _Walker()
    if root_name == "testsuite":
        walker.suite(root, parent_name=None, inherited=())
    else:
        walker.children(root, suite_name=None, inherited=_property_journeys(root))
    if not walker.cases:
        walker.notes.append("The report contains no test cases.")
    tool = "pytest" if root.get("name") == "pytest tests" else "junit"
    return TestRunSummary(
        format=FORMAT,
        parser_version=PARSER_VERSION,
        tool=tool,
        tool_version=None,
        cases=tuple(walker.cases),
        notes=tuple(walker.notes),
    )


class _Walker:
    def __init__(self) -> None:
        self.cases: list[TestCaseResult] = []
        self.notes: list[str] = []

    def suite(self, element: Element, *, parent_name: str | None, inherited: tuple[str, ...]) -> None:
        name = element.get("name") or parent_name
        before = len(self.cases)
        self.children(
            element,
            suite_name=name,
            inherited=merge_journeys(inherited, _property_journeys(element)),
        )
        self._compare_declared(element, name, self.cases[before:])

    def children(self, element: Element, *, suite_name: str | None, inherited: tuple[str, ...]) -> None:
        for child in element:
            tag = local_name(child)
            if tag == "testsuite":
                self.suite(child, parent_name=suite_name, inherited=inherited)
            elif tag == "testcase":
                self.cases.append(_case(child, suite_name, inherited))
                check_count(len(self.cases), "test cases")
            elif tag in ("error", "failure"):
                # An error reported against the suite itself (a crash before or after its
                # tests): it is not a test case, but it must not vanish from the summary.
                self.cases.append(
                    TestCaseResult(
                        name=f"{suite_name or 'test run'} ({tag} outside any test case)",
                        suite=suite_name,
                        classname=None,
                        outcome="error",
                        duration_s=None,
                        journeys=(),
                        message=_message(child),
                    )
                )

    def _compare_declared(self, element: Element, name: str | None, cases: list[TestCaseResult]) -> None:
        label = f"testsuite {name!r}" if name else "a testsuite"
        declared_tests = _declared_int(element, "tests")
        if declared_tests is not None and declared_tests != len(cases):
            self.notes.append(f"{label} declares tests={declared_tests} but contains {len(cases)} test cases.")
        declared_bad = sum(_declared_int(element, attr) or 0 for attr in ("failures", "errors"))
        counted_bad = sum(1 for case in cases if case.outcome in ("failed", "error"))
        if declared_bad != counted_bad and (element.get("failures") or element.get("errors")):
            self.notes.append(
                f"{label} declares {declared_bad} failures and errors but {counted_bad} of its test "
                "cases failed or errored."
            )


def _declared_int(element: Element, attribute: str) -> int | None:
    raw = element.get(attribute)
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None


def _properties(element: Element) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for group in element:
        if local_name(group) != "properties":
            continue
        for prop in group:
            if local_name(prop) != "property":
                continue
            name = prop.get("name")
            if name is None:
                continue
            value = prop.get("value")
            if value is None:
                value = (prop.text or "").strip()
            found.append((name, value))
    return found


def _property_journeys(element: Element) -> tuple[str, ...]:
    return merge_journeys(
        *(journey_ids_in(value) for name, value in _properties(element) if name.lower() in _JOURNEY_PROPERTIES)
    )


def _message(element: Element) -> str | None:
    message = element.get("message")
    if message and message.strip():
        return clean_message(message)
    return clean_message(element.text)


# The annotation Playwright's `test.fail()` adds; its JUnit reporter writes annotations as properties.
EXPECTED_FAILURE_PROPERTY = "fail"


def _outcome(element: Element, properties: list[tuple[str, str]]) -> tuple[Outcome, str | None]:
    by_tag: dict[str, Element] = {}
    for child in element:
        by_tag.setdefault(local_name(child), child)
    if "error" in by_tag:
        return "error", _message(by_tag["error"])
    if "failure" in by_tag:
        return "failed", _message(by_tag["failure"])
    if "skipped" in by_tag:
        return "skipped", _message(by_tag["skipped"])
    if any(name.lower() == EXPECTED_FAILURE_PROPERTY for name, _ in properties):
        return "skipped", EXPECTED_FAILURE_MESSAGE
    marker = next((by_tag[tag] for tag in by_tag if tag in _FLAKY_MARKERS), None)
    if marker is not None:
        return "flaky", _message(marker)
    return "passed", None


def _duration(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.replace(",", "").strip())
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


def _case(element: Element, suite: str | None, inherited: tuple[str, ...]) -> TestCaseResult:
    name = element.get("name") or ""
    raw_properties = _properties(element)
    properties: dict[str, str] = {}
    for prop_name, value in raw_properties:
        properties[prop_name] = f"{properties[prop_name]}, {value}" if prop_name in properties else value
    journeys = merge_journeys(
        inherited,
        *(journey_ids_in(value) for prop_name, value in raw_properties if prop_name.lower() in _JOURNEY_PROPERTIES),
        journey_tags_in_title(name),
    )
    outcome, message = _outcome(element, raw_properties)
    return TestCaseResult(
        name=name,
        suite=suite,
        classname=element.get("classname") or None,
        outcome=outcome,
        duration_s=_duration(element.get("time")),
        journeys=journeys,
        properties=properties,
        message=message,
    )
