"""Attempts at an outgoing call whose row waits in a table of its own (a notification, an answer
to GitHub): claim the row when it is due, record a failure with back-off or give up, hand the
due rows over again (the beat flush), and the Celery side of one attempt with its retries.

A row has ``status``, ``attempts``, ``last_error`` and ``next_attempt_at``; the caller's
queryset says which rows are still pending, and the caller records a success, audits and logs.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from celery import Task
from django.db.models import QuerySet

from outbox.services import publish_many

logger = logging.getLogger(__name__)
# The status of a row given up on (each kind's status choices name it "failed").
FAILED = "failed"
# However many attempts are configured, a row waits at most this long between two.
RETRY_MAX_DELAY_SECONDS = 3600
ERROR_MAX = 1000


class AttemptOutcome(StrEnum):
    SENT = "sent"  # the receiver took it
    RETRY = "retry"  # failed; attempts remain, next_attempt_at is set
    FAILED = "failed"  # failed for the last time
    SKIPPED = "skipped"  # another worker holds the row, it is already done or gone, or not yet due


@dataclass(frozen=True)
class Attempt:
    outcome: AttemptOutcome
    retry_in: int | None = None  # seconds, with RETRY


class Attempted(Protocol):
    """A row that is attempted (notifications.Notification, releasegate.GitHubDelivery)."""

    status: Any
    attempts: int
    last_error: str
    next_attempt_at: datetime

    def save(self, *, update_fields: Sequence[str]) -> None: ...


Row = TypeVar("Row", bound=Attempted)


def retry_delay(attempts: int, *, base: int) -> int:
    """Seconds to wait after the given number of failed attempts: base, 2·base, 4·base… capped."""
    return int(min(base * 2 ** (attempts - 1), RETRY_MAX_DELAY_SECONDS))


def attempt_claim(pending: "QuerySet[Any]", *, pk: Any, now: datetime, only_when_due: bool) -> Any:
    """Lock the pending row ``pk`` for this attempt, or None: another worker holds it (``SKIP
    LOCKED``: walk away instead of waiting), it is done or gone, or (``only_when_due``) its
    time has not come. The lock is held until the caller's transaction commits the outcome, so
    two workers never make the call at once; ``only_when_due`` keeps a flush and a Celery
    retry that both hold the row's id from both spending an attempt (only eager mode, where
    nothing runs concurrently, turns it off)."""
    row = pending.select_for_update(skip_locked=True, no_key=True).filter(pk=pk).first()
    if row is None or (only_when_due and row.next_attempt_at > now):
        return None
    return row


def attempt_failed(
    row: Row, error: str, *, now: datetime, max_attempts: int, retry_base: int, what: str, also_save: Sequence[str] = ()
) -> Attempt:
    """Record on the locked ``row`` (its ``attempts`` counted already) that the call failed:
    give up after ``max_attempts`` (status ``failed``, logged as an error), otherwise set the
    next attempt after the back-off (a warning). ``what``: the row, as the log names it;
    ``also_save``: other fields the attempt changed."""
    row.last_error = error[:ERROR_MAX]
    if row.attempts >= max_attempts:
        row.status = FAILED
        row.save(update_fields=["status", "attempts", "last_error", *also_save])
        logger.error("%s failed after %d attempts, giving up: %s", what, row.attempts, row.last_error)
        return Attempt(AttemptOutcome.FAILED)
    delay = retry_delay(row.attempts, base=retry_base)
    row.next_attempt_at = now + timedelta(seconds=delay)
    row.save(update_fields=["attempts", "last_error", "next_attempt_at", *also_save])
    logger.warning("%s attempt %d failed, retrying in %ds: %s", what, row.attempts, delay, row.last_error)
    return Attempt(AttemptOutcome.RETRY, retry_in=delay)


def attempts_hand_over_due(pending: "QuerySet[Any]", *, task: str, now: datetime, limit: int) -> int:
    """Queue ``task`` for every pending row whose attempt is due (beat's flush; in eager mode:
    attempt it now), with the outbox's short timeouts. Never raises: what is not handed over
    stays pending for the next flush. Handing a row over twice is harmless: an attempt locks
    the row and re-checks it."""
    due = pending.filter(next_attempt_at__lte=now).order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    return publish_many((task, [str(pk)]) for pk in list(due))


def attempt_with_retries(task: "Task[Any, Any]", attempt: Callable[[bool], Attempt]) -> str:
    """Run one ``attempt`` (called with ``only_when_due``) of a row, and ask Celery for the next
    one after a failure with the back-off's countdown; returns the outcome. The row's count of
    attempts, not Celery's ``max_retries``, decides when to give up."""
    if task.request.is_eager:
        # Eager mode (no broker, development and tests): with task_eager_propagates on, as in
        # our settings, Celery hands a raised Retry back to the caller and never re-runs the
        # task, so the retries would silently not happen. Make them here instead, one after
        # the other, as Celery's own eager retry would (it ignores the countdown too).
        attempted = attempt(False)
        while attempted.outcome == AttemptOutcome.RETRY:
            attempted = attempt(False)
        return str(attempted.outcome.value)
    attempted = attempt(True)
    if attempted.outcome != AttemptOutcome.RETRY:
        return str(attempted.outcome.value)
    raise task.retry(countdown=attempted.retry_in)
