"""Real ``celery worker`` processes for tests that need one (CI's PostgreSQL pass)."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from tests.processes import process_stop

QUIET_WORKER = ["--without-mingle", "--without-gossip", "--loglevel", "INFO"]


def test_database_url() -> str:
    """The database this test run uses, for a worker process to share (PostgreSQL only: a
    worker cannot share SQLite's test database)."""
    database = connection.settings_dict
    assert database["ENGINE"] == "django.db.backends.postgresql"
    credentials = quote(database["USER"]) + (f":{quote(database['PASSWORD'])}" if database["PASSWORD"] else "")
    return f"postgres://{credentials}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"


@contextmanager
def celery_worker(
    broker_url: str,
    *,
    env: dict[str, str] | None = None,
    pool: str = "solo",
    log: Path | None = None,
    purge: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """A worker on ``broker_url`` using the test database. ``pool="prefork"`` runs the task in
    one child process, so that killing that child shows what happens to a worker lost mid-task.
    Output goes to ``log`` (or nowhere; set CELERY_WORKER_LOG=1 to see it)."""
    overrides = {"CELERY_BROKER_READ_URL", "CELERY_BROKER_WRITE_URL"}
    worker_env = {key: value for key, value in os.environ.items() if key not in overrides}
    worker_env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": test_database_url(),
            "CELERY_BROKER_URL": broker_url,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "RELEASEGATE_VAR_DIR": str(settings.VAR_DIR),
            **(env or {}),
        }
    )
    celery = [sys.executable, "-m", "celery", "-A", "releasegate"]
    if purge:
        # What `celery purge -f` does (empty the queues the worker will read: this test
        # worker's own), from this process instead of another Python process starting Django.
        from releasegate.celery import app

        with app.connection_for_write(broker_url) as broker:
            app.control.purge(connection=broker)
    pool_options = ["--pool", pool] + (["--concurrency", "1"] if pool == "prefork" else [])
    output = log.open("wb") if log else (None if os.environ.get("CELERY_WORKER_LOG") else subprocess.DEVNULL)
    try:
        worker = subprocess.Popen(
            [*celery, "worker", *pool_options, *QUIET_WORKER], env=worker_env, stdout=output, stderr=subprocess.STDOUT
        )
    finally:
        if log and output not in (None, subprocess.DEVNULL):
            output.close()  # type: ignore[union-attr]
    try:
        yield worker
    finally:
        process_stop(worker, timeout=20)
