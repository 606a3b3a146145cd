"""The traceability table stays true: docs/compliance.md is what the suite's markers make of
docs/compliance.toml, every docs section it names exists, and a requirement-marked test is
not quietly skipped in CI's PostgreSQL pass."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.compliance import REPO, TABLE, TraceabilityError, generate, marked_tests, requirements_load, table_build

SAMPLE_TEST = textwrap.dedent(
    """
    import pytest

    @pytest.mark.requirement("PR-01")
    def test_marked():
        pytest.skip("needs PostgreSQL")

    def test_unmarked():
        pytest.skip("needs a browser")

    @pytest.mark.requirement("PR-02")
    def test_marked_and_passing():
        pass
    """
)


def test_docs_compliance_md_is_generated_from_the_markers_and_is_not_stale() -> None:
    assert TABLE.read_text() == generate(), "docs/compliance.md is stale: run .venv/bin/python -m tests.compliance"


def test_every_requirement_of_the_list_has_a_row() -> None:
    assert sorted(requirements_load()) == [f"PR-{number:02d}" for number in range(1, 24)]


def test_every_requirement_has_a_test_or_says_why_not_yet() -> None:
    rows = table_build(requirements_load(), marked_tests())

    assert all(row.tests or row.not_yet for row in rows)
    with pytest.raises(TraceabilityError, match="PR-99"):
        table_build(requirements_load(), {"PR-99": ["tests/test_x.py::test_y"]})


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_docs_section_the_table_names_exists() -> None:
    missing = []
    for key, entry in requirements_load().items():
        for reference in entry["docs"]:
            path, _, anchor = reference.partition("#")
            text = (REPO / path).read_text() if (REPO / path).is_file() else ""
            headings = {_slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}
            if anchor not in headings:
                missing.append(f"{key}: {reference}")

    assert missing == []


def _run_sample(tmp_path: Path, database_url: str) -> str:
    (tmp_path / "test_sample.py").write_text(SAMPLE_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    requirement(*ids): proves\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "DATABASE_URL": database_url}
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "tests.requirement_skips", "-p", "no:django", "-p", "no:xdist"),
            *("-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), "-rA", "-q"),
            str(tmp_path / "test_sample.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    return result.stdout


def test_a_requirement_marked_test_skipped_on_postgres_fails_the_run(tmp_path: Path) -> None:
    output = _run_sample(tmp_path, "postgres://postgres@127.0.0.1:5432/rg_any")

    assert "FAILED test_sample.py::test_marked" in output
    assert "proves PR-01 and must run in the PostgreSQL pass, but was skipped: Skipped: needs PostgreSQL" in output
    assert "SKIPPED [1] test_sample.py:9: needs a browser" in output
    assert "PASSED test_sample.py::test_marked_and_passing" in output


def test_on_sqlite_a_requirement_marked_test_may_be_skipped_with_its_reason(tmp_path: Path) -> None:
    output = _run_sample(tmp_path, "sqlite:///var/db.sqlite3")

    assert "SKIPPED [1] test_sample.py:6: needs PostgreSQL" in output
    assert "FAILED" not in output
