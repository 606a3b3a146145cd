"""The pack job model moves from the audit app to this one; its table stays ``audit_packjob``
with its rows. Only the migration state changes (the audit app drops the model from its state
in audit.0008), and the content type is renamed so permissions given on it still hold."""

import uuid

import django.db.models.deletion
from django.apps.registry import Apps
from django.conf import settings
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def _rename_content_type(old_label: str, new_label: str):  # type: ignore[no-untyped-def]
    def rename(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
        content_type = apps.get_model("contenttypes", "ContentType")
        db = schema_editor.connection.alias
        if content_type.objects.using(db).filter(app_label=new_label, model="packjob").exists():
            return
        content_type.objects.using(db).filter(app_label=old_label, model="packjob").update(app_label=new_label)

    return rename


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("audit", "0007_witness_cosignatures"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="PackJob",
                    fields=[
                        ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        (
                            "kind",
                            models.CharField(
                                choices=[("changelog", "Changelog pack"), ("population", "Population pack")],
                                max_length=16,
                            ),
                        ),
                        (
                            "params",
                            models.JSONField(
                                help_text="What the pack covers: a changelog, or a period, domain and sample."
                            ),
                        ),
                        (
                            "params_key",
                            models.CharField(
                                help_text="SHA-256 of kind and params: the same request, the same job.", max_length=64
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("queued", "Queued"),
                                    ("running", "Running"),
                                    ("done", "Done"),
                                    ("failed", "Failed"),
                                ],
                                default="queued",
                                max_length=16,
                            ),
                        ),
                        ("progress", models.PositiveSmallIntegerField(default=0, help_text="Percent.")),
                        ("stage", models.CharField(blank=True, max_length=100)),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        ("error", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField()),
                        ("started_at", models.DateTimeField(blank=True, null=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "files",
                            models.JSONField(
                                blank=True, default=dict, help_text="name -> {storage_key, sha256, size, media_type}"
                            ),
                        ),
                        (
                            "lease_owner",
                            models.CharField(blank=True, help_text="The delivery building it now.", max_length=64),
                        ),
                        ("lease_expires_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "requested_by",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "audit_packjob",
                        "ordering": ["-created_at"],
                        "indexes": [models.Index(fields=["params_key", "status"], name="packjob_params_status")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(_rename_content_type("audit", "packs"), _rename_content_type("packs", "audit")),
    ]
