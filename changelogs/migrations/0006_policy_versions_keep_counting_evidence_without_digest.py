"""Policy versions written before `require_evidence_digest` existed keep meaning what they meant.

The rule's default is on (PR-02: evidence that names no digest proves nothing of the build). A
version that does not name the rule would take that default, so upgrading would tighten rules a
domain's administrators versioned, and a decision naming "payments v3" would mean two things.
A policy change is a change like any other (PR-21): the upgrade writes the rule as it was, off,
into the versions that predate it, and a domain turns it on with a new version. Domains
without any version follow the defaults, which are on.
"""

from typing import Any

from django.db import migrations


def pin(apps: Any, schema_editor: Any) -> None:
    policy = apps.get_model("changelogs", "Policy")
    for version in policy.objects.all().iterator():
        if isinstance(version.rules, dict) and "require_evidence_digest" not in version.rules:
            version.rules = {**version.rules, "require_evidence_digest": False}
            version.save(update_fields=["rules"])


def unpin(apps: Any, schema_editor: Any) -> None:
    """Before this migration the rule did not exist: take it out of the versions again."""
    policy = apps.get_model("changelogs", "Policy")
    for version in policy.objects.all().iterator():
        if isinstance(version.rules, dict) and "require_evidence_digest" in version.rules:
            version.rules = {key: value for key, value in version.rules.items() if key != "require_evidence_digest"}
            version.save(update_fields=["rules"])


class Migration(migrations.Migration):
    dependencies = [
        ("changelogs", "0005_evidence_artifact_digest"),
    ]

    operations = [migrations.RunPython(pin, unpin)]
