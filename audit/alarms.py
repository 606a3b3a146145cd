"""Alarms: the stored audit log cannot be trusted until an operator has looked.

Raised by the sequencer when the database no longer extends what it signed (it then signs
nothing), by ``audit_verify`` when it finds a divergence, and when a witness refuses the log's
checkpoint. Each is logged as an error, counted in the metrics
(``releasegate_audit_alarms_open``) and, with ``AUDIT_ALARM_DENIES_GATE``, makes the gate deny
``audit_log_inconsistent`` until resolved. Raising and resolving are audited, and a new alarm
is announced with ``alarm_raised`` in the transaction that records it: the notifications
(approvals, above this app) e-mail ``AUDIT_ALARM_EMAILS`` and call the webhook.
"""

import logging

from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.utils import timezone

from audit.models import AlarmKind, AuditAlarm
from core.actors import ActingUser

logger = logging.getLogger("audit.alarms")

# Sent with ``alarm=`` when an alarm is first raised (not for its repeats), inside the
# transaction that records it, so that what announces it commits with it.
alarm_raised = Signal()


class LogInconsistent(Exception):
    """The sequencer refuses to extend the log; ``kind`` is an AlarmKind."""

    def __init__(self, kind: AlarmKind, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail


def alarm_raise(*, kind: AlarmKind, detail: str) -> AuditAlarm:
    """Record (or count again) the open alarm of this kind, in its own transaction when the
    caller has none, and log it as an error."""
    from audit import record
    from audit.services import SYSTEM

    logger.error("audit log alarm %s: %s", kind.value, detail)
    now = timezone.now()
    for _attempt in range(2):
        try:
            with transaction.atomic():
                alarm = AuditAlarm.objects.select_for_update().filter(kind=kind, resolved_at__isnull=True).first()
                if alarm is not None:
                    alarm.last_seen_at = now
                    alarm.occurrences += 1
                    alarm.detail = detail
                    alarm.save(update_fields=["last_seen_at", "occurrences", "detail"])
                    return alarm
                alarm = AuditAlarm.objects.create(kind=kind, detail=detail, raised_at=now, last_seen_at=now)
                record(
                    actor=SYSTEM,
                    action=AuditAlarmAction.RAISED,
                    target=alarm,
                    data={"kind": kind.value, "detail": detail},
                )
                alarm_raised.send(sender=AuditAlarm, alarm=alarm)
                return alarm
        except IntegrityError:  # raised at the same moment by another process: count on theirs
            continue
    raise RuntimeError("could not record the audit alarm")  # pragma: no cover


def alarm_resolve(*, alarm: AuditAlarm, acting_user: ActingUser, resolution: str) -> AuditAlarm:
    """An operator has looked into the alarm and says what was found and done."""
    from audit import record

    if not resolution.strip():
        raise ValueError("say what was found and done")
    with transaction.atomic():
        alarm = AuditAlarm.objects.select_for_update().get(pk=alarm.pk)
        if alarm.resolved_at is not None:
            return alarm
        alarm.resolved_at = timezone.now()
        alarm.resolved_by = acting_user
        alarm.resolution = resolution
        alarm.save(update_fields=["resolved_at", "resolved_by", "resolution"])
        record(
            actor=acting_user,
            action=AuditAlarmAction.RESOLVED,
            target=alarm,
            data={"kind": alarm.kind, "resolution": resolution},
        )
    return alarm


def alarms_open() -> list[AuditAlarm]:
    return list(AuditAlarm.objects.filter(resolved_at__isnull=True).order_by("raised_at"))


def alarm_open_exists() -> bool:
    return AuditAlarm.objects.filter(resolved_at__isnull=True).exists()


class AuditAlarmAction:
    RAISED = "audit_alarm:raised"
    RESOLVED = "audit_alarm:resolved"
