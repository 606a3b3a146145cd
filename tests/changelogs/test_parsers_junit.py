"""JUnit XML: the real pytest, Node and Playwright reports, and crafted journey variants.

Every figure below was counted by hand from the sample files (see samples/README.md).
"""

import json

import pytest

from changelogs.parsers import TestRunSummary, journey_ids_in, journey_tags_in_title, parse
from tests.shared_data import SAMPLES_DIR

TESTS_DIR = SAMPLES_DIR / "tests"


def _junit(name: str) -> TestRunSummary:
    summary = parse("junit", (TESTS_DIR / name).read_bytes())
    assert isinstance(summary, TestRunSummary)
    return summary


def _crafted(xml: str) -> TestRunSummary:
    summary = parse("junit", xml.encode())
    assert isinstance(summary, TestRunSummary)
    return summary


def _outcomes(summary: TestRunSummary) -> dict[str, str]:
    return {case.name: case.outcome for case in summary.cases}


@pytest.mark.parametrize("name", ["junit-pytest-xunit2.xml", "junit-pytest-xunit1.xml"])
def test_it_counts_the_pytest_outcomes_in_both_junit_families(name: str) -> None:
    summary = _junit(name)

    # 1 pass + 2 parametrized passes, 1 failure, 1 setup error, 1 skip + 1 xfail (kept as skipped).
    assert (summary.tests, summary.passed, summary.failed, summary.errors, summary.skipped, summary.flaky) == (
        7,
        3,
        1,
        1,
        2,
        0,
    )
    assert summary.tool == "pytest"
    assert summary.verdict == "fail"
    assert _outcomes(summary) == {
        "test_login_journey": "passed",
        "test_funds_transfer_journey": "failed",
        "test_statement_download_journey": "error",
        "test_card_freeze_journey": "skipped",
        "test_standing_order_journey": "skipped",
        "test_fx_quote_journey[EUR]": "passed",
        "test_fx_quote_journey[GBP]": "passed",
    }


def test_it_keeps_the_pytest_case_details() -> None:
    cases = {case.name: case for case in _junit("junit-pytest-xunit2.xml").cases}

    login = cases["test_login_journey"]
    assert login.suite == "staging-journeys"
    assert login.classname == "journeys.test_critical_journeys"
    assert dict(login.properties) == {"journey": "login", "environment": "staging"}
    assert login.duration_s == 0.0
    assert cases["test_funds_transfer_journey"].message == (
        "AssertionError: balance after transfer does not match ledger\nassert 70 == 75"
    )
    assert cases["test_statement_download_journey"].message == (
        'failed on setup with "ConnectionError: staging auth service unreachable"'
    )
    assert cases["test_standing_order_journey"].message == "known defect PAY-123"


def test_it_does_not_take_free_text_or_non_ids_as_journeys() -> None:
    summary = _junit("junit-pytest-xunit2.xml")

    # The login test records journey "login" (not an id) and the xfail reason mentions PAY-123.
    assert all(case.journeys == () for case in summary.cases)
    assert dict(summary.journey_outcomes) == {}


def test_it_counts_a_collection_error_as_an_error() -> None:
    summary = _junit("junit-pytest-collection-error.xml")

    assert (summary.tests, summary.passed, summary.errors) == (1, 0, 1)
    assert summary.cases[0].name == "broken.test_broken_import"
    assert summary.cases[0].classname is None
    assert summary.cases[0].message == "collection failure"
    assert summary.verdict == "fail"


def test_it_reads_the_node_runner_report_including_the_test_outside_any_suite() -> None:
    summary = _junit("junit-node-test.xml")

    # 4 cases in "checkout journey" plus "health endpoint responds" directly under <testsuites>;
    # the todo test is reported as skipped like the skipped one.
    assert (summary.tests, summary.passed, summary.failed, summary.errors, summary.skipped) == (5, 2, 1, 0, 2)
    assert summary.tool == "junit"
    outcomes = _outcomes(summary)
    assert outcomes["pays with saved card"] == "failed"
    assert outcomes["shows loyalty points"] == "skipped"
    assert outcomes["health endpoint responds"] == "passed"
    cases = {case.name: case for case in summary.cases}
    assert cases["health endpoint responds"].suite is None
    assert cases["adds item to basket"].suite == "checkout journey"
    assert cases["adds item to basket"].duration_s == pytest.approx(0.000494)
    assert summary.notes == ()


def test_it_reads_the_playwright_junit_report_where_flakiness_is_invisible() -> None:
    summary = _junit("playwright-junit.xml")

    # The flaky test is written as an ordinary pass by Playwright's JUnit reporter.
    assert (summary.tests, summary.passed, summary.failed, summary.errors, summary.skipped, summary.flaky) == (
        6,
        4,
        1,
        0,
        1,
        0,
    )
    outcomes = _outcomes(summary)
    prefix = "critical journeys (API level) \u203a "  # Playwright joins title parts with U+203A
    assert outcomes[prefix + "statement export exists"] == "failed"
    assert outcomes[prefix + "flaky transfer confirmation"] == "passed"
    assert outcomes[prefix + "card freeze (disabled in staging)"] == "skipped"


def test_its_summary_is_plain_json() -> None:
    summary = _junit("junit-pytest-xunit2.xml")

    data = summary.to_dict()

    assert json.loads(json.dumps(data)) == data
    assert data["kind"] == "sanity"
    assert data["format"] == "junit"
    assert data["parser_version"] == "junit/2"
    assert data["verdict"] == "fail"
    assert (data["tests"], data["passed"], data["failed"], data["errors"], data["skipped"]) == (7, 3, 1, 1, 2)
    assert data["cases"][0] == {
        "name": "test_login_journey",
        "suite": "staging-journeys",
        "classname": "journeys.test_critical_journeys",
        "outcome": "passed",
        "duration_s": 0.0,
        "journeys": [],
        "properties": {"journey": "login", "environment": "staging"},
        "message": None,
    }


# --- journeys on crafted variants of the real pytest report -----------------------------------


def _pytest_variant(*replacements: tuple[str, str]) -> TestRunSummary:
    text = (TESTS_DIR / "junit-pytest-xunit2.xml").read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new, 1)
    return _crafted(text)


_FUNDS_TRANSFER = 'name="test_funds_transfer_journey" time="0.000">'
_STATEMENT = 'name="test_statement_download_journey" time="0.000">'


def test_it_takes_the_journey_from_a_junit_property() -> None:
    summary = _pytest_variant(('value="login"', 'value="PAY-001"'))

    login = next(case for case in summary.cases if case.name == "test_login_journey")
    assert login.journeys == ("PAY-001",)
    assert dict(summary.journey_outcomes) == {"PAY-001": "passed"}


def test_it_reports_a_failed_test_as_a_failed_journey() -> None:
    summary = _pytest_variant(
        ('value="login"', 'value="PAY-001"'),
        (_FUNDS_TRANSFER, _FUNDS_TRANSFER + '<properties><property name="journey" value="TRF-002" /></properties>'),
    )

    assert dict(summary.journey_outcomes) == {"PAY-001": "passed", "TRF-002": "failed"}
    assert summary.to_dict()["journeys"] == {"PAY-001": "passed", "TRF-002": "failed"}


def test_a_journey_with_one_passing_and_one_failing_test_is_failed() -> None:
    summary = _pytest_variant(
        ('value="login"', 'value="PAY-001"'),
        (_FUNDS_TRANSFER, _FUNDS_TRANSFER + '<properties><property name="journey" value="PAY-001" /></properties>'),
    )

    assert dict(summary.journey_outcomes) == {"PAY-001": "failed"}


def test_a_journey_whose_test_errored_is_failed() -> None:
    summary = _pytest_variant(
        (_STATEMENT, _STATEMENT + '<properties><property name="journey" value="STM-007" /></properties>'),
    )

    assert dict(summary.journey_outcomes) == {"STM-007": "failed"}


def test_a_journey_whose_only_test_was_skipped_or_xfailed_is_skipped() -> None:
    summary = _pytest_variant(
        (
            'name="test_standing_order_journey" time="0.000">',
            'name="test_standing_order_journey" time="0.000">'
            '<properties><property name="journey" value="SO-100" /></properties>',
        ),
    )

    assert dict(summary.journey_outcomes) == {"SO-100": "skipped"}


def test_a_property_may_list_several_journeys_and_non_ids_are_ignored() -> None:
    summary = _pytest_variant(('value="login"', 'value="PAY-001, ACC-12 login pay-003;CARD-9"'))

    login = next(case for case in summary.cases if case.name == "test_login_journey")
    assert login.journeys == ("PAY-001", "ACC-12", "CARD-9")


def test_it_takes_a_bracketed_journey_tag_from_the_test_name() -> None:
    summary = _pytest_variant(
        ("test_fx_quote_journey[EUR]", "test_fx_quote_journey[FX-010]"),
        ("test_fx_quote_journey[GBP]", "test_fx_quote_journey [FX-011, FX-012]"),
    )

    journeys = {case.name: case.journeys for case in summary.cases if case.journeys}
    assert journeys == {
        "test_fx_quote_journey[FX-010]": ("FX-010",),
        "test_fx_quote_journey [FX-011, FX-012]": ("FX-011", "FX-012"),
    }
    assert dict(summary.journey_outcomes) == {"FX-010": "passed", "FX-011": "passed", "FX-012": "passed"}


def test_a_suite_level_journey_property_applies_to_every_case_in_it() -> None:
    summary = _pytest_variant(
        (
            'hostname="vm">',
            'hostname="vm"><properties><property name="journey" value="ONB-001" /></properties>',
        ),
    )

    assert all(case.journeys[:1] == ("ONB-001",) for case in summary.cases)
    assert dict(summary.journey_outcomes) == {"ONB-001": "failed"}


def test_a_playwright_journey_annotation_arrives_in_junit_as_a_property() -> None:
    text = (TESTS_DIR / "playwright-junit.xml").read_text(encoding="utf-8")
    text = text.replace(
        '<property name="skip" value="">',
        '<property name="journey" value="CARD-004">',
        1,
    )

    summary = _crafted(text)

    assert dict(summary.journey_outcomes) == {"CARD-004": "skipped"}


# --- other JUnit dialects ---------------------------------------------------------------------


def test_it_reads_a_report_whose_root_is_a_single_testsuite() -> None:
    summary = _crafted(
        '<testsuite name="unit" tests="2"><testcase name="a [PAY-001]" time="0.5"/>'
        '<testcase name="b"><failure message="boom"/></testcase></testsuite>'
    )

    assert (summary.tests, summary.passed, summary.failed) == (2, 1, 1)
    assert summary.cases[0].suite == "unit"
    assert summary.cases[0].duration_s == 0.5
    assert dict(summary.journey_outcomes) == {"PAY-001": "passed"}


def test_a_surefire_rerun_that_passed_is_flaky_and_one_that_kept_failing_is_failed() -> None:
    summary = _crafted(
        "<testsuites><testsuite name='s'>"
        "<testcase name='flaky'><flakyFailure message='first try'/></testcase>"
        "<testcase name='broken'><failure message='x'/><rerunFailure message='y'/></testcase>"
        "</testsuite></testsuites>"
    )

    assert _outcomes(summary) == {"flaky": "flaky", "broken": "failed"}
    assert summary.cases[0].message == "first try"


def test_an_error_reported_against_a_suite_is_not_lost() -> None:
    summary = _crafted(
        "<testsuites><testsuite name='payments' tests='1' errors='1'>"
        "<testcase name='ok'/><error message='fixture crashed after tests'/>"
        "</testsuite></testsuites>"
    )

    assert (summary.tests, summary.passed, summary.errors) == (2, 1, 1)
    assert summary.cases[1].message == "fixture crashed after tests"
    assert summary.verdict == "fail"


def test_it_counts_cases_found_and_notes_totals_the_file_declares_wrongly() -> None:
    summary = _crafted(
        "<testsuites><testsuite name='s' tests='10' failures='0' errors='0'>"
        "<testcase name='a'/><testcase name='b'><failure/></testcase></testsuite></testsuites>"
    )

    assert (summary.tests, summary.failed) == (2, 1)
    assert summary.notes == (
        "testsuite 's' declares tests=10 but contains 2 test cases.",
        "testsuite 's' declares 0 failures and errors but 1 of its test cases failed or errored.",
    )


def test_a_run_with_no_test_cases_or_only_skips_does_not_pass() -> None:
    empty = _crafted("<testsuites><testsuite name='s' tests='0'/></testsuites>")
    skipped = _crafted("<testsuite name='s'><testcase name='a'><skipped/></testcase></testsuite>")

    assert empty.tests == 0
    assert empty.verdict == "fail"
    assert empty.notes == ("The report contains no test cases.",)
    assert skipped.verdict == "fail"


def test_a_run_with_only_passes_passes() -> None:
    summary = _crafted("<testsuite name='s'><testcase name='a'/><testcase name='b'><skipped/></testcase></testsuite>")

    assert summary.verdict == "pass"


def test_it_bounds_long_messages() -> None:
    summary = _crafted(f"<testsuite><testcase name='b'><failure>{'x' * 5000}</failure></testcase></testsuite>")

    message = summary.cases[0].message
    assert message is not None
    assert len(message) == 1000
    assert message.endswith("…")


# --- the journey id helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "journeys"),
    [
        ("PAY-001", ("PAY-001",)),
        ("PAY-001, PAY-002;ACC-3  @CARD-44", ("PAY-001", "PAY-002", "ACC-3", "CARD-44")),
        ("PAY-001 PAY-001", ("PAY-001",)),
        ("login", ()),
        ("pay-001", ()),
        ("P-001", ()),  # the prefix needs two characters
        ("PAYMENTSXYZ-1", ()),  # and at most ten
        ("PAY-1234567", ()),  # the number at most six digits
        ("known defect PAY-123", ("PAY-123",)),  # a listed value; free text is never scanned
        ("", ()),
        (None, ()),
    ],
)
def test_journey_ids_in_reads_a_list_of_ids(text: str | None, journeys: tuple[str, ...]) -> None:
    assert journey_ids_in(text) == journeys


@pytest.mark.parametrize(
    ("title", "journeys"),
    [
        ("checkout [PAY-001]", ("PAY-001",)),
        ("checkout [PAY-001, PAY-002] @ACC-003", ("PAY-001", "PAY-002", "ACC-003")),
        ("test_fx_quote_journey[EUR]", ()),
        ("mail ops@PAY-001.example", ()),
        ("fixes PAY-123 for good", ()),
        ("@smoke", ()),
    ],
)
def test_journey_tags_in_title_reads_only_tags(title: str, journeys: tuple[str, ...]) -> None:
    assert journey_tags_in_title(title) == journeys
