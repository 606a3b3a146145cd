"""Whether the audit trail can vouch for new decisions: what the gate and pack builds ask."""

from django.conf import settings

from audit.alarms import alarm_open_exists


def trail_facts(*, alarm_open: bool | None = None) -> tuple[bool, bool]:
    """(an audit alarm is open and denies, the witness quorum is required and missing).
    ``alarm_open`` when the caller read it already (the gate's one statement on PostgreSQL)."""
    if alarm_open is None and settings.AUDIT_ALARM_DENIES_GATE:
        alarm_open = alarm_open_exists()
    inconsistent = bool(settings.AUDIT_ALARM_DENIES_GATE) and bool(alarm_open)
    quorum_missing = False
    if settings.AUDIT_WITNESS_QUORUM:
        from audit.witnessing import quorum_met

        quorum_missing = not quorum_met()
    return inconsistent, quorum_missing
