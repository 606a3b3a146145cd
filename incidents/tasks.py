"""Beat's sweep of overdue postmortems, long-term actions and DORA reports."""

from celery import shared_task


@shared_task(ignore_result=True)
def incidents_overdue() -> dict[str, int]:
    """Run by beat every five minutes: notifies each overdue thing once."""
    from incidents.services import overdue_notify

    return overdue_notify()
