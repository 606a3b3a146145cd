"""Roles that exist in every installation, kept in step with the models after each migrate."""

from typing import Any

from django.contrib.auth.models import Group, Permission

AUDITORS = "Auditors"

# Auditors read everything that makes up the change record and change nothing.
_AUDITOR_APPS = ("changelogs", "approvals", "audit", "releasegate", "incidents", "packs")


def roles_ensure(**_: Any) -> None:
    auditors, _created = Group.objects.get_or_create(name=AUDITORS)
    view_permissions = Permission.objects.filter(
        content_type__app_label__in=_AUDITOR_APPS, codename__startswith="view_"
    ).exclude(content_type__app_label="releasegate", content_type__model="user")
    auditors.permissions.add(*view_permissions)
