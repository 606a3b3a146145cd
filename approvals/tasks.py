"""Delivering the notification outbox (approvals/notifications.py, docs/notifications.md)."""

from typing import Any

from celery import Task, shared_task

from approvals.notifications import notification_attempt, notification_dispatch_due
from outbox.attempts import attempt_with_retries


@shared_task(bind=True, ignore_result=True, max_retries=None)
def notification_deliver(self: Task[Any, Any], notification_id: str) -> str:
    """One delivery attempt; after a failure, the next one through Celery's retry with the
    back-off's countdown. NOTIFY_MAX_ATTEMPTS, counted in the row, decides when to give up, not
    Celery's ``max_retries``: a retry that is lost (worker or broker gone) is picked up by the
    flush with the row's count intact."""
    return attempt_with_retries(
        self, lambda only_when_due: notification_attempt(notification_id=notification_id, only_when_due=only_when_due)
    )


@shared_task(ignore_result=True)
def notifications_flush() -> int:
    """Run by beat every 30 s: hands every pending notification that is due to
    ``notification_deliver``. Covers a broker that was down when the change committed and
    retries lost with a worker."""
    return notification_dispatch_due()


@shared_task(ignore_result=True)
def retrospectives_overdue() -> int:
    """Run by beat every minute: marks hotfix retrospectives past their deadline overdue,
    once each, and notifies the domain's signing authorities."""
    from approvals.services import retrospectives_mark_overdue

    return retrospectives_mark_overdue()
