"""Retrospectives carry their changelog's service, so that the gate counts a service's overdue
retrospectives through an index (it joined every overdue retrospective in the bank to its
changelog on every check). Existing rows take their changelog's service."""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def service_fill(apps: Any, schema_editor: Any) -> None:
    retrospective = apps.get_model("approvals", "Retrospective")
    changelog = apps.get_model("changelogs", "Changelog")
    retrospective.objects.update(
        service_id=Subquery(changelog.objects.filter(pk=OuterRef("changelog_id")).values("service_id")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0001_approvals_retrospectives_outbox"),
        ("changelogs", "0003_signing_authorities"),
    ]

    operations = [
        migrations.AddField(
            model_name="retrospective",
            name="service",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="changelogs.service",
            ),
        ),
        migrations.RunPython(service_fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="retrospective",
            name="service",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="changelogs.service"
            ),
        ),
        migrations.AddIndex(
            model_name="retrospective",
            index=models.Index(fields=["service", "status"], name="retrospective_service_status"),
        ),
    ]
