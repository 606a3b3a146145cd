"""Reads of the catalog and changelogs, always through what the user may see."""

from datetime import datetime
from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from guardian.shortcuts import get_objects_for_user

from changelogs.errors import ChangelogError
from changelogs.models import Changelog, ChangelogRevision, Domain, Journey, Service
from releasegate.errors import NotFound, PermissionDenied

MANAGE_CHANGELOGS = "changelogs.manage_changelogs"
VIEW_CHANGELOG = "changelogs.view_changelog"


def service_list_managed(*, user: Any) -> QuerySet[Service]:
    """Services the user may act on as a pipeline or requester."""
    return get_objects_for_user(user, MANAGE_CHANGELOGS, klass=Service, accept_global_perms=True)


def service_may_manage(*, user: Any, service: Service) -> bool:
    return bool(user.has_perm(MANAGE_CHANGELOGS, service) or user.has_perm(MANAGE_CHANGELOGS))


def changelog_list_visible(*, user: Any) -> QuerySet[Changelog]:
    """Everything for auditors and admins (global view permission); otherwise the changelogs
    of the services the user manages."""
    changelogs = Changelog.objects.select_related(
        "service", "service__domain", "created_by", "current_revision", "current_revision__submitted_by"
    )
    if user.is_superuser or user.has_perm(VIEW_CHANGELOG):
        return changelogs.all()
    return changelogs.filter(service__in=service_list_managed(user=user))


def changelog_list(
    *,
    user: Any,
    service: str | None = None,
    domain: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Changelog]:
    changelogs = changelog_list_visible(user=user)
    if service:
        changelogs = changelogs.filter(service__slug=service)
    if domain:
        changelogs = changelogs.filter(service__domain__slug=domain)
    if kind:
        changelogs = changelogs.filter(kind=kind)
    if status:
        changelogs = changelogs.filter(status=status)
    if created_after:
        changelogs = changelogs.filter(created_at__gte=created_after)
    if created_before:
        changelogs = changelogs.filter(created_at__lt=created_before)
    return changelogs.order_by("-created_at", "id")


def changelog_get(*, user: Any, changelog_id: UUID | str, for_update: bool = False) -> Changelog:
    """The changelog if the user may see it, else NotFound (never telling whether it exists).
    With ``for_update`` the user must also manage its service (else PermissionDenied), and the
    row is locked for the rest of the transaction."""
    changelogs = changelog_list_visible(user=user)
    if for_update:
        changelogs = changelogs.select_for_update(no_key=True, of=("self",))
    changelog = changelogs.filter(pk=changelog_id).first()
    if changelog is None:
        raise NotFound(ChangelogError.CHANGELOG_NOT_FOUND, "No such changelog.")
    if for_update and not service_may_manage(user=user, service=changelog.service):
        raise PermissionDenied(ChangelogError.CHANGELOG_READ_ONLY, "You may read this changelog but not change it.")
    return changelog


def revision_content(*, changelog: Changelog) -> dict[str, Any]:
    if changelog.current_revision is None:
        raise RuntimeError(f"changelog {changelog.pk} has no revision")
    return dict(changelog.current_revision.content)


def revision_list(*, changelog: Changelog) -> QuerySet[ChangelogRevision]:
    return changelog.revisions.select_related("submitted_by").order_by("number")


def revision_get(*, changelog: Changelog, number: int) -> ChangelogRevision:
    revision = revision_list(changelog=changelog).filter(number=number).first()
    if revision is None:
        raise NotFound(ChangelogError.REVISION_NOT_FOUND, f"Changelog has no revision {number}.")
    return revision


def domain_list() -> QuerySet[Domain]:
    return Domain.objects.all()


def service_list() -> QuerySet[Service]:
    return Service.objects.select_related("domain")


def journey_list(*, domain: str | None = None, critical: bool | None = None) -> QuerySet[Journey]:
    journeys = Journey.objects.select_related("domain")
    if domain:
        journeys = journeys.filter(domain__slug=domain)
    if critical is not None:
        journeys = journeys.filter(critical=critical)
    return journeys
