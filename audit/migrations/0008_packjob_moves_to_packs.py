"""The pack job model now lives in the packs app (packs.0001), on the same table: the audit app
only forgets it; no table or row changes."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0007_witness_cosignatures"),
        ("packs", "0001_pack_jobs_from_audit"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="PackJob")],
            database_operations=[],
        ),
    ]
