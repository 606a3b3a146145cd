"""Make the audit tables append-only at the database level (UPDATE, DELETE, TRUNCATE refused)
and let PostgreSQL stamp each event with its transaction id and the database clock."""

from typing import Any

from django.db import migrations

from audit.triggers import create_statements, drop_statements


def create_triggers(apps: Any, schema_editor: Any) -> None:
    for statement in create_statements(schema_editor.connection.vendor):
        schema_editor.execute(statement, params=None)


def drop_triggers(apps: Any, schema_editor: Any) -> None:
    for statement in drop_statements(schema_editor.connection.vendor):
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_audit_trail")]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
