"""API tokens get scopes. Tokens issued before could do everything their account could: they
keep every scope (the field's default here only), and every token issued from now on names its
scopes. Reversible: going back drops the column."""

from django.db import migrations, models

import releasegate.models


class Migration(migrations.Migration):
    dependencies = [
        ("releasegate", "0007_github_delivery_replay_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="scopes",
            field=models.JSONField(
                default=releasegate.models.all_token_scopes,
                help_text="What the token may do (releasegate.tokens.TokenScope), chosen when it is issued.",
            ),
            preserve_default=False,
        ),
    ]
