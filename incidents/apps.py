from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def taxonomy_ensure(sender: Any, **kwargs: Any) -> None:
    """The default root-cause taxonomy, after every migrate: a data migration writes it once, and
    a test flush (TransactionTestCase) empties the table, after which this puts it back."""
    from django.db import connections

    from incidents.models import RootCauseTag
    from incidents.taxonomy import taxonomy_seed

    using = kwargs.get("using", "default")
    # Not when this app's tables are not there (a migration test that went back before them).
    if RootCauseTag._meta.db_table in connections[using].introspection.table_names():
        taxonomy_seed(using=using)


def linked_incidents_context(changelog: Any) -> dict[str, Any]:
    """For the approver's pages of a change (approvals.admin.change_context): the incidents the
    change was confirmed to cause and the one it answers as a hotfix."""
    from incidents.selectors import incidents_of_changelog

    linked = incidents_of_changelog(changelog=changelog)
    return {"incidents_caused": linked["caused"], "incidents_answered": linked["answered"]}


class IncidentsConfig(AppConfig):
    name = "incidents"
    verbose_name = "Incidents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(taxonomy_ensure, sender=self, dispatch_uid="incidents.taxonomy_ensure")
        from approvals.admin import change_context_extras

        if linked_incidents_context not in change_context_extras:
            change_context_extras.append(linked_incidents_context)
