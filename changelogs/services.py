"""Writes to changelogs. Each service runs in one transaction, locks what it decides on, and
records its audit event in that same transaction."""

from datetime import datetime
from typing import Any

from django.db import models, transaction
from django.utils import timezone

import audit
from changelogs.audit_actions import ChangelogAction
from changelogs.content import content_hash
from changelogs.errors import ChangelogError
from changelogs.models import (
    Changelog,
    ChangelogRevision,
    ChangelogStatus,
    Domain,
    Journey,
    RevisionStatus,
    Service,
)
from releasegate.errors import Conflict

# Once deployed or rolled back a changelog is history; a new deployment needs a new changelog.
_CLOSED = {ChangelogStatus.DEPLOYED, ChangelogStatus.ROLLED_BACK}


def _revision_fields(content: dict[str, Any]) -> dict[str, Any]:
    artifact = content["artifact"]
    return {"artifact_digest": artifact["digest"], "source_revision": artifact["source_revision"]}


def _current_revision(changelog: Changelog) -> ChangelogRevision:
    if changelog.current_revision is None:
        raise RuntimeError(f"changelog {changelog.pk} has no revision")
    return changelog.current_revision


def _changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {"old": old.get(key), "new": new.get(key)}
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    }


@transaction.atomic
def changelog_create(
    *, acting_user: Any, service: Service, kind: str, content: dict[str, Any], now: datetime | None = None
) -> Changelog:
    """A new changelog with its first revision as a draft. ``content`` is already validated."""
    now = now or timezone.now()
    changelog = Changelog.objects.create(
        service=service,
        kind=kind,
        status=ChangelogStatus.DRAFT,
        created_by=acting_user,
        created_at=now,
        updated_at=now,
    )
    changelog.current_revision = ChangelogRevision.objects.create(
        changelog=changelog,
        number=1,
        status=RevisionStatus.DRAFT,
        content=content,
        created_by=acting_user,
        created_at=now,
        **_revision_fields(content),
    )
    changelog.save(update_fields=["current_revision"])
    audit.record(
        actor=acting_user,
        action=ChangelogAction.CHANGELOG_CREATED,
        target=changelog,
        data={"service": service.slug, "kind": kind, "revision": 1, "content": content},
    )
    return changelog


@transaction.atomic
def changelog_edit(
    *, acting_user: Any, changelog: Changelog, content: dict[str, Any], now: datetime | None = None
) -> ChangelogRevision:
    """Replace the content. A draft is edited in place; a submitted (or decided) changelog
    gets a new draft revision and its earlier revision is superseded, so approvals of the
    earlier content no longer count. ``changelog`` must be locked by the caller's selector."""
    now = now or timezone.now()
    if changelog.status in _CLOSED:
        raise Conflict(
            ChangelogError.CHANGELOG_CLOSED,
            f"The changelog is {changelog.status}; a new deployment needs a new changelog.",
        )
    revision = _current_revision(changelog)
    changes = _changes(revision.content, content)
    if revision.status == RevisionStatus.DRAFT:
        revision.content = content
        for field, value in _revision_fields(content).items():
            setattr(revision, field, value)
        revision.save(update_fields=["content", "artifact_digest", "source_revision"])
        action = ChangelogAction.CHANGELOG_EDITED
    else:
        revision.status = RevisionStatus.SUPERSEDED
        revision.save(update_fields=["status"])
        revision = ChangelogRevision.objects.create(
            changelog=changelog,
            number=revision.number + 1,
            status=RevisionStatus.DRAFT,
            content=content,
            created_by=acting_user,
            created_at=now,
            **_revision_fields(content),
        )
        changelog.current_revision = revision
        changelog.status = ChangelogStatus.DRAFT
        action = ChangelogAction.CHANGELOG_REVISED
    changelog.updated_at = now
    changelog.save(update_fields=["current_revision", "status", "updated_at"])
    audit.record(
        actor=acting_user,
        action=action,
        target=changelog,
        data={"revision": revision.number, "changes": changes},
    )
    return revision


@transaction.atomic
def changelog_submit(*, acting_user: Any, changelog: Changelog, now: datetime | None = None) -> ChangelogRevision:
    """Freeze the current draft revision and hash its content. ``changelog`` must be locked."""
    now = now or timezone.now()
    revision = _current_revision(changelog)
    if revision.status != RevisionStatus.DRAFT:
        raise Conflict(
            ChangelogError.CHANGELOG_NOT_DRAFT,
            f"Revision {revision.number} is already {revision.status}; edit the changelog to start a new revision.",
        )
    revision.content_hash = content_hash(
        service=changelog.service.slug, kind=changelog.kind, content=revision.content, evidence=[]
    )
    revision.status = RevisionStatus.SUBMITTED
    revision.submitted_by = acting_user
    revision.submitted_at = now
    revision.save(update_fields=["content_hash", "status", "submitted_by", "submitted_at"])
    changelog.status = ChangelogStatus.SUBMITTED
    changelog.updated_at = now
    changelog.save(update_fields=["status", "updated_at"])
    audit.record(
        actor=acting_user,
        action=ChangelogAction.CHANGELOG_SUBMITTED,
        target=changelog,
        data={"revision": revision.number, "content_hash": revision.content_hash},
    )
    return revision


_CATALOG_ACTIONS: dict[type[models.Model], tuple[ChangelogAction, ChangelogAction]] = {
    Domain: (ChangelogAction.DOMAIN_SAVED, ChangelogAction.DOMAIN_DELETED),
    Service: (ChangelogAction.SERVICE_SAVED, ChangelogAction.SERVICE_DELETED),
    Journey: (ChangelogAction.JOURNEY_SAVED, ChangelogAction.JOURNEY_DELETED),
}


def _catalog_values(instance: models.Model) -> dict[str, Any]:
    return {
        field.attname: getattr(instance, field.attname)
        for field in instance._meta.concrete_fields
        if field.attname != "id"
    }


@transaction.atomic
def catalog_save(*, acting_user: Any, instance: Domain | Service | Journey) -> None:
    """Create or change a domain, service or journey (admin), recording old and new values."""
    model = type(instance)
    before = model.objects.select_for_update().filter(pk=instance.pk).first() if instance.pk else None
    old = _catalog_values(before) if before else {}
    instance.full_clean()
    instance.save()
    new = _catalog_values(instance)
    audit.record(
        actor=acting_user,
        action=_CATALOG_ACTIONS[model][0],
        target=instance,
        data={"created": before is None, "changes": _changes(old, new)},
    )


@transaction.atomic
def catalog_delete(*, acting_user: Any, instance: Domain | Service | Journey) -> None:
    """Delete a catalog entry; anything still referring to it (PROTECT) stops the deletion."""
    values = _catalog_values(instance)
    target = (f"{instance._meta.app_label}.{instance._meta.model_name}", str(instance.pk))
    instance.delete()
    audit.record(actor=acting_user, action=_CATALOG_ACTIONS[type(instance)][1], target=target, data={"deleted": values})
