from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from audit import sequencer, services

        services.sequence_pending_hook = sequencer.sequence_pending
