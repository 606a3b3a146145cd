from celery import shared_task

from audit.sequencer import sequence_pending


@shared_task(ignore_result=True)
def audit_sequence() -> int:
    """Run by beat about every second; overlapping runs are harmless (the lock decides)."""
    return sequence_pending()
