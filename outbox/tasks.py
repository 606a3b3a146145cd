"""The beat flush of the outbox (outbox/services.py)."""

from celery import shared_task

from outbox.services import outbox_flush


@shared_task(ignore_result=True)
def outbox_flush_task() -> int:
    """Run by beat every OUTBOX_FLUSH_SECONDS: publishes what the requests could not."""
    return outbox_flush()
