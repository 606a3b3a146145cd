"""Evidence files for API tests: the real samples, and passing variants derived from them."""

import json
from pathlib import Path

from tests.shared_data import SAMPLES_DIR

# (sample path, kind, the format it must be detected as)
REAL_SAMPLES: list[tuple[str, str, str]] = [
    ("tests/junit-pytest-xunit2.xml", "sanity", "junit"),
    ("tests/junit-pytest-xunit1.xml", "sanity", "junit"),
    ("tests/junit-pytest-collection-error.xml", "sanity", "junit"),
    ("tests/junit-node-test.xml", "sanity", "junit"),
    ("tests/playwright-junit.xml", "sanity", "junit"),
    ("tests/playwright-report.json", "sanity", "playwright_json"),
    ("tests/playwright-ctrf.json", "sanity", "ctrf_json"),
    ("perf/k6-summary-export.json", "performance", "k6_summary"),
    ("perf/k6-handlesummary.json", "performance", "k6_summary"),
    ("perf/locust_stats.csv", "performance", "locust_csv"),
    ("perf/locust-stats.json", "performance", "locust_json"),
    ("security/bandit.sarif", "security", "sarif"),
    ("security/ruff.sarif", "security", "sarif"),
    ("security/semgrep.sarif", "security", "sarif"),
    ("security/pip-audit-unaudited.json", "security", "pip_audit"),
    ("sbom/cyclonedx-sbom.cdx.json", "document", "cyclonedx"),
    ("sbom/cyclonedx-vex.cdx.json", "document", "cyclonedx"),
    ("identity/intoto-slsa-provenance-v1.json", "document", "intoto"),
    ("identity/intoto-slsa-provenance-v1.dsse.json", "document", "intoto"),
]


def sample(path: str) -> bytes:
    return (SAMPLES_DIR / path).read_bytes()


def junit_with_journeys(outcomes: dict[str, str]) -> bytes:
    """A pytest-style JUnit file with one test per journey, tagged with a journey property
    (the convention in docs/evidence.md); outcome 'passed' or 'failed'."""
    cases = []
    for journey, outcome in outcomes.items():
        failure = '<failure message="assert False">assert False</failure>' if outcome == "failed" else ""
        cases.append(
            f'<testcase classname="journeys.test_critical" name="test_{journey.lower().replace("-", "_")}" time="0.2">'
            f'<properties><property name="journey" value="{journey}" /></properties>{failure}</testcase>'
        )
    failures = sum(1 for outcome in outcomes.values() if outcome == "failed")
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="staging-journeys" errors="0" failures="{failures}" skipped="0" tests="{len(cases)}" time="1.0">'
        + "".join(cases)
        + "</testsuite></testsuites>"
    ).encode()


def k6_passing() -> bytes:
    """The real k6 --summary-export file as a run that met its thresholds."""
    summary = json.loads(sample("perf/k6-summary-export.json"))
    failed = summary["metrics"]["http_req_failed"]
    failed.update({"passes": 0, "fails": failed["passes"] + failed["fails"], "value": 0})
    for metric in summary["metrics"].values():
        for expression in metric.get("thresholds", {}):
            metric["thresholds"][expression] = False
    return json.dumps(summary).encode()


def sarif_clean() -> bytes:
    """The real semgrep SARIF file of a scan that found nothing."""
    report = json.loads(sample("security/semgrep.sarif"))
    for run in report["runs"]:
        run["results"] = []
    return json.dumps(report).encode()


def write_to(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path
