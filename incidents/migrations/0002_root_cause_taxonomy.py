from django.db import migrations


def seed(apps, schema_editor):
    from incidents.taxonomy import taxonomy_seed

    taxonomy_seed(using=schema_editor.connection.alias, model=apps.get_model("incidents", "RootCauseTag"))


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_incidents_postmortems_dora")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
