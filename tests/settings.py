"""Settings for the test suite: the production settings with test-only secrets.

The database comes from DATABASE_URL like in production (SQLite by default); Celery runs
eagerly unless CELERY_BROKER_URL names a real broker.
"""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-any-deployment")
os.environ.setdefault("RELEASEGATE_VAR_DIR", tempfile.mkdtemp(prefix="releasegate-test-"))


def _var_dir_of_this_worker() -> None:
    """Each pytest-xdist worker gets a directory of its own below the run's: the workers inherit
    the controller's environment, and one shared directory let a worker's tests see the other's
    evidence files (a test's count of the files it stored came out 3 instead of 1)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    var = os.environ["RELEASEGATE_VAR_DIR"]
    if worker and os.path.basename(var) != worker:
        os.environ["RELEASEGATE_VAR_DIR"] = os.path.join(var, worker)
        os.makedirs(os.environ["RELEASEGATE_VAR_DIR"], exist_ok=True)


_var_dir_of_this_worker()
# A fixed checkpoint key so that failures are reproducible; it signs nothing outside tests.
os.environ.setdefault(
    "AUDIT_SIGNING_KEY",
    "PRIVATE+KEY+releasegate.test/audit-log+5399b913+AbBgSv4N+kJgcfZQDmIWiTxVQ54wj2iCWgUO1CHe5t5m",
)
os.environ.setdefault("AUDIT_LOG_ORIGIN", "releasegate.test/audit-log")
os.environ.setdefault("ORGANISATION_NAME", "Test Bank plc")


def _test_signing_certificate() -> None:
    """A throwaway document-signing pair for this test run (made once per run, in its var dir)."""
    if os.environ.get("PACK_SIGNING_KEY_FILE"):
        return
    from pathlib import Path

    from releasegate.pdfsign import generate_development_certificate

    var = Path(os.environ["RELEASEGATE_VAR_DIR"])
    key, cert = var / "pack-signing.key", var / "pack-signing.crt"
    if not key.exists():
        key_pem, cert_pem = generate_development_certificate("Test Bank plc evidence packs (tests)", "Test Bank plc")
        key.write_bytes(key_pem)
        cert.write_bytes(cert_pem)
    os.environ["PACK_SIGNING_KEY_FILE"] = str(key)
    os.environ["PACK_SIGNING_CERT_FILE"] = str(cert)


_test_signing_certificate()


def _database_of_this_worker() -> None:
    """TEST_DATABASE_URLS (space-separated) gives each pytest-xdist worker a PostgreSQL server
    of its own. The audit sequencer waits for the server-wide transaction horizon (docs/audit.md),
    which one worker's open test transaction would hold back for another's committing tests;
    on separate servers the workers cannot delay each other, so the whole suite runs in
    parallel (.ci/run starts the second server)."""
    urls = os.environ.get("TEST_DATABASE_URLS", "").split()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not urls or not worker.startswith("gw"):
        return
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > len(urls):
        raise SystemExit(f"TEST_DATABASE_URLS names {len(urls)} servers for {workers} pytest-xdist workers: one each")
    os.environ["DATABASE_URL"] = urls[int(worker.removeprefix("gw"))]
    # Chosen once, in the test process: the processes a test starts (a Celery worker on the
    # test database, say) inherit the choice, not the list, and keep the DATABASE_URL given them.
    del os.environ["TEST_DATABASE_URLS"]


_database_of_this_worker()

from releasegate.settings import *  # noqa: E402,F403

# pytest-xdist runs the suite in several processes; each has its own test database (pytest-
# django) and, on a real broker, its own queue, so that one worker's Celery worker never takes
# another's task. The Celery workers the tests start inherit the variable and the queue.
CELERY_TASK_DEFAULT_QUEUE = f"celery-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; test users only
# The test client speaks plain HTTP.
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
