"""In CI's PostgreSQL pass a test that proves a requirement must run: a skip of a test marked
``@pytest.mark.requirement(...)`` is reported as a failure there (the SQLite pass may skip
what needs PostgreSQL, a broker or a browser, with its printed reason).

The pass is recognised by DATABASE_URL naming PostgreSQL, as the settings read it. Loaded by
tests/conftest.py; a plugin of its own so that tests/test_compliance.py can run it alone.
"""

import os
from collections.abc import Generator
from urllib.parse import urlsplit

import pytest

POSTGRES_SCHEMES = frozenset({"postgres", "postgresql", "pgsql"})


def postgres_pass() -> bool:
    scheme = urlsplit(os.environ.get("DATABASE_URL", "")).scheme
    return scheme.split("+", 1)[0] in POSTGRES_SCHEMES


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    marker = item.get_closest_marker("requirement")
    if marker is None or not report.skipped or hasattr(report, "wasxfail") or not postgres_pass():
        return report
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"{item.nodeid} proves {', '.join(marker.args)} and must run in the PostgreSQL pass, but was skipped: {reason}"
    )
    return report
