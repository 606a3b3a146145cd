"""The parsers agree (issue 13): the same run reads the same whichever report format carries it,
a scan that skipped files says so, and a refused Locust file says which one to upload."""

import json
from typing import Any

import pytest

from changelogs import parsers
from changelogs.models import Changelog
from tests.changelogs.evidence_files import sample
from tests.changelogs.test_apis_evidence import upload
from tests.conftest import Cast
from tests.factories import JourneyFactory, changelog_make

# One Playwright run with two tests tagged with critical journeys: `pays by card` is marked
# `test.fail()` and failed as expected; `sets up a standing order` passed. Below, the run as
# Playwright's JSON reporter and as its JUnit reporter write it.
PLAYWRIGHT_JSON = {
    "config": {"version": "1.49.0"},
    "suites": [
        {
            "title": "journeys.spec.ts",
            "specs": [
                {
                    "title": "pays by card @PAY-001",
                    "tags": ["PAY-001"],
                    "tests": [
                        {
                            "status": "expected",
                            "expectedStatus": "failed",
                            "annotations": [{"type": "fail"}],
                            "projectName": "chromium",
                            "results": [{"status": "failed", "duration": 120, "retry": 0}],
                        }
                    ],
                },
                {
                    "title": "sets up a standing order @PAY-002",
                    "tags": ["PAY-002"],
                    "tests": [
                        {
                            "status": "expected",
                            "expectedStatus": "passed",
                            "annotations": [],
                            "projectName": "chromium",
                            "results": [{"status": "passed", "duration": 80, "retry": 0}],
                        }
                    ],
                },
            ],
        }
    ],
    "errors": [],
}
PLAYWRIGHT_JUNIT = b"""<testsuites id="" name="" tests="2" failures="0" skipped="0" errors="0" time="0.3">
<testsuite name="journeys.spec.ts" timestamp="2026-12-01T09:00:00.000Z" hostname="chromium" tests="2" failures="0" skipped="0" time="0.2" errors="0">
<testcase name="pays by card @PAY-001" classname="journeys.spec.ts" time="0.12">
<properties>
<property name="fail" value="">
</property>
</properties>
</testcase>
<testcase name="sets up a standing order @PAY-002" classname="journeys.spec.ts" time="0.08">
</testcase>
</testsuite>
</testsuites>
"""


def journeys_of(fmt: str, data: bytes) -> dict[str, str]:
    journeys: dict[str, str] = parsers.parse(fmt, data).to_dict()["journeys"]
    return journeys


def test_an_expected_failure_covers_nothing_in_playwright_json_and_in_its_junit() -> None:
    """Seen: the same `test.fail()` test covered PAY-001 when uploaded as JUnit, not as JSON."""
    from_json = journeys_of("playwright_json", json.dumps(PLAYWRIGHT_JSON).encode())
    from_junit = journeys_of("junit", PLAYWRIGHT_JUNIT)

    assert from_json == from_junit == {"PAY-001": "skipped", "PAY-002": "passed"}


def test_an_expected_failure_that_passed_fails_in_both_formats() -> None:
    report: dict[str, Any] = json.loads(json.dumps(PLAYWRIGHT_JSON))
    test = report["suites"][0]["specs"][0]["tests"][0]
    test.update(status="unexpected", results=[{"status": "passed", "duration": 120, "retry": 0}])
    junit = PLAYWRIGHT_JUNIT.replace(
        b"</properties>\n</testcase>",
        b'</properties>\n<failure message="Expected to fail, but passed." type="FAILURE"></failure>\n</testcase>',
        1,
    )

    assert journeys_of("playwright_json", json.dumps(report).encode())["PAY-001"] == "failed"
    assert journeys_of("junit", junit)["PAY-001"] == "failed"


def test_a_pytest_xfail_is_skipped_like_a_playwright_expected_failure() -> None:
    junit = (
        b'<testsuites><testsuite name="pytest" tests="1" failures="0" errors="0" skipped="1">'
        b'<testcase classname="journeys" name="test_pay_by_card[PAY-001]" time="0.1">'
        b'<skipped type="pytest.xfail" message="card network down in staging" /></testcase>'
        b"</testsuite></testsuites>"
    )

    assert journeys_of("junit", junit) == {"PAY-001": "skipped"}


def test_uploaded_either_way_the_expected_failure_leaves_its_journey_uncovered(cast: Cast) -> None:
    JourneyFactory(journey_id="PAY-001", domain=cast.payments, critical=True)
    JourneyFactory(journey_id="PAY-002", domain=cast.payments, critical=True)
    client = cast.pipeline.client()
    findings = []
    for name, data in [("junit.xml", PLAYWRIGHT_JUNIT), ("report.json", json.dumps(PLAYWRIGHT_JSON).encode())]:
        changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
        assert upload(client, changelog, name, data, "sanity", environment="staging").status_code == 201
        readiness = client.get(f"/api/v1/changelogs/{changelog.pk}/readiness").json()
        findings.append([(f["code"], f["journey"]) for f in readiness["findings"] if f["journey"]])

    assert findings[0] == findings[1] == [("journey_not_covered", "PAY-001")]


# --- SARIF: a scan that says it skipped files ----------------------------------------------


def semgrep_with_notifications(notifications: list[dict[str, Any]], key: str = "toolExecutionNotifications") -> bytes:
    """The real semgrep SARIF, clean, whose run reports the given notifications about itself."""
    report = json.loads(sample("security/semgrep.sarif"))
    run = report["runs"][0]
    run["results"] = []
    run["invocations"][0][key] = notifications
    return json.dumps(report).encode()


SYNTAX_ERROR = {
    "descriptor": {"id": "Syntax error"},
    "level": "warning",
    "message": {"text": "Syntax error at line demoapp/broken.py:3:\n `def (` was unexpected"},
    "locations": [{"physicalLocation": {"artifactLocation": {"uri": "demoapp/broken.py"}, "region": {"startLine": 3}}}],
}


def test_a_scan_whose_tool_could_not_scan_a_file_says_so_in_its_summary() -> None:
    summary = parsers.parse("sarif", semgrep_with_notifications([SYNTAX_ERROR])).to_dict()

    assert summary["scan_incomplete"] == [
        "Semgrep OSS warning Syntax error in demoapp/broken.py:3: Syntax error at line demoapp/broken.py:3: "
        "`def (` was unexpected"
    ]
    assert any("did not scan everything" in note for note in summary["notes"])
    assert summary["verdict"] == "pass"  # the parser's hint; readiness decides below


@pytest.mark.parametrize(
    ("key", "level", "incomplete"),
    [
        ("toolExecutionNotifications", "error", True),
        ("toolExecutionNotifications", None, True),  # SARIF's default level is warning
        ("toolExecutionNotifications", "note", False),
        ("toolConfigurationNotifications", "error", True),
        ("toolConfigurationNotifications", "warning", False),
    ],
)
def test_which_notifications_mean_something_was_not_scanned(key: str, level: str | None, incomplete: bool) -> None:
    notification = {"message": {"text": "could not load rules/secrets.yml"}}
    if level:
        notification["level"] = level

    summary = parsers.parse("sarif", semgrep_with_notifications([notification], key)).to_dict()

    assert bool(summary["scan_incomplete"]) is incomplete


def test_a_scan_that_skipped_a_file_is_a_readiness_finding(cast: Cast) -> None:
    """Seen: such a run read "pass" with nothing telling the approver a file was skipped."""
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    client = cast.pipeline.client()

    response = upload(client, changelog, "semgrep.sarif", semgrep_with_notifications([SYNTAX_ERROR]), "security")

    assert response.status_code == 201
    assert response.json()["summary"]["scan_incomplete"]
    readiness = client.get(f"/api/v1/changelogs/{changelog.pk}/readiness").json()
    incomplete = [f for f in readiness["findings"] if f["code"] == "scan_incomplete"]
    assert len(incomplete) == 1
    assert incomplete[0]["message"].startswith("semgrep.sarif: the scanner reports that it did not scan everything")
    assert "demoapp/broken.py" in incomplete[0]["message"]


# --- Locust: the side files --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["locust_stats_history.csv", "locust_failures.csv", "locust_exceptions.csv"])
@pytest.mark.parametrize("declared", [None, "locust_csv"], ids=["detected", "named"])
def test_each_refused_locust_side_file_names_the_stats_file(cast: Cast, name: str, declared: str | None) -> None:
    """Seen: the side files were refused with a message that did not say which file to upload."""
    changelog: Changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    extra = {"format": declared} if declared else {}

    response = upload(
        cast.pipeline.client(),
        changelog,
        f"run{name.removeprefix('locust')}",
        sample(f"perf/{name}"),
        "performance",
        **extra,
    )

    assert response.status_code == 400
    assert response.json()["code"] == "wrong_format"
    assert "*_stats.csv" in response.json()["message"]
    assert not changelog.evidence.exists()
