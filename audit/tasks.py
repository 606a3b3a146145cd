from typing import Any

from celery import Task, shared_task
from django.conf import settings

from audit.sequencer import sequence_pending
from audit.witnessing import SubmitOutcome, retry_delay, witness_submit


@shared_task(ignore_result=True)
def audit_sequence() -> int:
    """Run by beat about every second; overlapping runs are harmless (the lock decides)."""
    return sequence_pending()


@shared_task(bind=True, ignore_result=True, max_retries=None)
def witness_submission(self: Task[Any, Any], tree_size: int, witness_name: str) -> str:
    """Published by the outbox after a checkpoint commits (audit.witnessing). A witness that
    cannot be reached is tried again with back-off, AUDIT_WITNESS_MAX_ATTEMPTS times in all; a
    submission given up (or lost with a worker) is made good by the next checkpoint's, which
    proves consistency from the size that witness last cosigned. In eager mode (no broker) one
    attempt is made: the sequencer's process does not wait out a back-off."""
    outcome = witness_submit(tree_size=tree_size, witness_name=witness_name)
    attempt = self.request.retries + 1
    if outcome is not SubmitOutcome.RETRY or self.request.is_eager or attempt >= settings.AUDIT_WITNESS_MAX_ATTEMPTS:
        return outcome.value
    raise self.retry(countdown=retry_delay(attempt))
