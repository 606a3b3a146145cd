"""Who can report production deployments and who can decide gate overrides (PR-07).

Release Gate cannot see who holds deploy rights in the bank's cloud (docs/compliance.md says
what to attach for that); it can say who can tell it that a deployment happened (a covered
report is what makes a deployment authorised) and who can let a change through a freeze. The
access review reads this: ideally only pipelines report deployments, and every human among the
reporters is an exception to explain.

A reporter is anyone ``changelogs.selectors.service_list_managed`` lets act on a service: a
superuser, a holder of the global ``manage_changelogs`` permission (directly or through a
group), or of the object permission on the service (directly or through a group). A pipeline
counts only while it has an unrevoked, unexpired token with the ``deployments`` scope. A
decider of overrides is a signing authority of the domain (releasegate.freezes).
"""

from datetime import datetime
from typing import Any

from django.contrib.auth.models import Permission
from django.utils import timezone
from guardian.models import GroupObjectPermission, UserObjectPermission

from approvals.selectors import authority_holders
from changelogs.models import Domain, Service
from releasegate.models import ApiToken, User
from releasegate.tokens import TokenScope


def _add(found: dict[int, dict[str, Any]], user: User, services: list[str], via: str) -> None:
    row = found.setdefault(user.pk, {"user": user, "services": set(), "via": []})
    row["services"] |= set(services)
    if via not in row["via"]:
        row["via"].append(via)


def _reporting_pipelines(now: datetime) -> set[int]:
    tokens = ApiToken.objects.filter(revoked_at__isnull=True, expires_at__gt=now)
    return {
        token.service_account_id
        for token in tokens.only("service_account_id", "scopes")
        if TokenScope.DEPLOYMENTS in (token.scopes or [])
    }


def deployment_reporters(*, now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or timezone.now()
    services = {str(service.pk): service.slug for service in Service.objects.all()}
    every = sorted(services.values())
    permission = Permission.objects.get(content_type__app_label="changelogs", codename="manage_changelogs")
    active = User.objects.filter(is_active=True)
    found: dict[int, dict[str, Any]] = {}
    for user in active.filter(is_superuser=True):
        _add(found, user, every, "superuser")
    for user in active.filter(user_permissions=permission):
        _add(found, user, every, "global permission")
    for user in active.filter(groups__permissions=permission).distinct():
        _add(found, user, every, "global permission")
    for grant in UserObjectPermission.objects.filter(permission=permission, user__is_active=True).select_related(
        "user"
    ):
        if grant.object_pk in services:
            _add(found, grant.user, [services[grant.object_pk]], "object permission on the service")
    for grant in GroupObjectPermission.objects.filter(permission=permission).select_related("group"):
        if grant.object_pk not in services:
            continue
        for user in active.filter(groups=grant.group):
            _add(found, user, [services[grant.object_pk]], f"group {grant.group.name}")
    pipelines = _reporting_pipelines(now)
    rows = []
    for row in found.values():
        user = row["user"]
        if user.is_service_account:
            if user.pk not in pipelines:
                continue
            row["via"].append("an API token with the deployments scope")
        rows.append(
            {
                "principal": user.audit_actor,
                "human": not user.is_service_account,
                "services": sorted(row["services"]),
                "via": row["via"],
            }
        )
    return sorted(rows, key=lambda row: row["principal"])


def override_deciders() -> list[dict[str, Any]]:
    domains: dict[str, set[str]] = {}
    for domain in Domain.objects.all():
        for user in authority_holders(domain=domain):
            domains.setdefault(user.audit_actor, set()).add(domain.slug)
    return [{"principal": principal, "domains": sorted(held)} for principal, held in sorted(domains.items())]


def deployment_rights(*, now: datetime | None = None) -> dict[str, Any]:
    reporters = deployment_reporters(now=now)
    return {
        "deployment_reporters": reporters,
        "humans_who_can_report_deployments": [row["principal"] for row in reporters if row["human"]],
        "override_deciders": override_deciders(),
    }
