"""Settings for the test suite: the production settings with test-only secrets.

The database comes from DATABASE_URL like in production (SQLite by default); Celery runs
eagerly unless CELERY_BROKER_URL names a real broker.
"""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-any-deployment")
os.environ.setdefault("RELEASEGATE_VAR_DIR", tempfile.mkdtemp(prefix="releasegate-test-"))
# A fixed checkpoint key so that failures are reproducible; it signs nothing outside tests.
os.environ.setdefault(
    "AUDIT_SIGNING_KEY",
    "PRIVATE+KEY+releasegate.test/audit-log+5399b913+AbBgSv4N+kJgcfZQDmIWiTxVQ54wj2iCWgUO1CHe5t5m",
)
os.environ.setdefault("AUDIT_LOG_ORIGIN", "releasegate.test/audit-log")
os.environ.setdefault("ORGANISATION_NAME", "Test Bank plc")

from releasegate.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed; test users only
# The test client speaks plain HTTP.
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
