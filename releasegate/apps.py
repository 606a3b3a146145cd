from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ReleaseGateConfig(AppConfig):
    name = "releasegate"
    verbose_name = "Release Gate"

    def ready(self) -> None:
        # Bind shared tasks to our Celery app in every Django process (web, worker, commands).
        from axes.signals import user_locked_out

        from releasegate import celery, schema, signals  # noqa: F401  (schema: OpenAPI extensions register on import)
        from releasegate.roles import roles_ensure

        post_migrate.connect(roles_ensure, sender=self)
        user_locked_out.connect(signals.locked_out, dispatch_uid="releasegate-audit-locked-out")
