"""One clock for the times that decide (issue 19, PR-12): the database's.

Audit events are stamped by the database (``statement_timestamp()``); decision validity,
deadlines, submissions and notification due times come from the same clock, so a web worker
whose clock is wrong cannot issue an allow decision that is already expired, or flag the
deployment after it unauthorised. The offset between this process's clock and the database's
is measured by /readyz and /metrics (releasegate/health.py).
"""

from datetime import datetime

from audit.sequencer import database_now


def business_now() -> datetime:
    """Now, by the database's clock (one cheap query; in a transaction, the statement's time)."""
    return database_now()
