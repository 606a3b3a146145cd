from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        from approvals.notifications import audit_alarm_notify
        from audit.alarms import alarm_raised

        # The audit trail sits below this app: it announces an alarm, the notifications send it.
        alarm_raised.connect(audit_alarm_notify, dispatch_uid="approvals.audit_alarm_notify")
