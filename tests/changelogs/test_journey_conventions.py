"""The pytest convention in docs/evidence.md, run for real: a suite written as the docs say
produces JUnit XML whose journeys Release Gate reads."""

import subprocess
import sys
from pathlib import Path

from changelogs.parsers import parse

CONFTEST = """
def pytest_collection_modifyitems(items):
    for item in items:
        for mark in item.iter_markers("journey"):
            item.user_properties.append(("journey", ",".join(mark.args)))
"""

SUITE = """
import pytest

@pytest.mark.journey("PAY-001")
def test_pay_by_card():
    assert True

def test_set_up_standing_order(record_property):
    record_property("journey", "PAY-002")
    assert True

@pytest.mark.journey("TRF-001")
def test_domestic_transfer():
    assert 70 == 75
"""


def test_the_documented_pytest_convention_yields_journeys(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    journey(id): the critical journey a test covers\n")
    (tmp_path / "test_payments.py").write_text(SUITE)
    report = tmp_path / "junit.xml"

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:django",
            f"--junitxml={report}",
            "-o",
            "junit_family=xunit1",
            "-W",
            "ignore",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    summary = parse("junit", report.read_bytes()).to_dict()
    assert summary["journeys"] == {"PAY-001": "passed", "PAY-002": "passed", "TRF-001": "failed"}
