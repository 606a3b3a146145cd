"""Settings for bench/audit.py: the test settings (fixed, test-only checkpoint key) plus the
bench-only apps. The database comes from DATABASE_URL, which the benchmark sets to its own
scratch database."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "pgtrigger", "pghistory", "auditlog", "bench"]

DEBUG = False  # no query log: it would grow with every write
# The sequencer runs where the benchmark says (a separate process), never on commit.
AUDIT_SEQUENCE_ON_COMMIT = False
