"""Writes to changelogs. Each service runs in one transaction, locks what it decides on, and
records its audit event in that same transaction."""

import mimetypes
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

import audit
from audit.clock import business_now
from audit.services import SYSTEM
from changelogs import parsers
from changelogs.audit_actions import ChangelogAction
from changelogs.content_rules import CONTENT_FIELDS, content_validate
from changelogs.errors import ChangelogError
from changelogs.files import file_name_clean, file_name_problem
from changelogs.lifecycle import CLOSED, may_change
from changelogs.models import (
    Changelog,
    ChangelogKind,
    ChangelogRevision,
    ChangelogStatus,
    CommitAuthors,
    CommitAuthorsStatus,
    Domain,
    Evidence,
    EvidenceKind,
    Journey,
    Policy,
    RevisionStatus,
    Service,
)
from changelogs.policy import PolicyError, PolicyRules, environments_required
from changelogs.selectors import (
    changelog_lock_in_place,
    policy_for,
    readiness_of,
    revision_current,
    service_may_manage,
)
from changelogs.signed import content_hash
from changelogs.storage import EvidenceCorrupted, blob_put, blob_read
from core.actors import ActingUser, Actor
from core.errors import (
    Conflict,
    IntegrityFailure,
    InvalidInput,
    PayloadTooLarge,
    PermissionDenied,
    field_error,
    reject_unknown_fields,
)


def _revision_fields(content: dict[str, Any]) -> dict[str, Any]:
    artifact = content["artifact"]
    return {"artifact_digest": artifact["digest"], "source_revision": artifact["source_revision"]}


def _changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {"old": old.get(key), "new": new.get(key)}
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    }


def changelog_lock_to_change(*, acting_user: ActingUser, changelog: Changelog) -> Changelog:
    """Lock the changelog (``changelog_lock_in_place``) and check, under the lock, that the acting
    user may change it: they manage its service, else 403 ``changelog_read_only``. Where every
    service that changes a changelog on someone's behalf starts, so that a reader who may see
    the changelog (an approver, an auditor) cannot change it by calling the service directly."""
    changelog_lock_in_place(changelog=changelog)
    if not service_may_manage(user=acting_user, service=changelog.service):
        raise PermissionDenied(ChangelogError.CHANGELOG_READ_ONLY, "You may read this changelog but not change it.")
    return changelog


def kind_require(kind: Any) -> str:
    """``kind`` if it is a changelog kind, else 400 ``invalid_kind`` (the content rules depend
    on it, so it is checked first)."""
    if kind not in ChangelogKind.values:
        message = "Must be 'train' or 'hotfix'."
        raise InvalidInput(
            ChangelogError.INVALID_KIND,
            "kind must be 'train' or 'hotfix'.",
            fields={"kind": [field_error(ChangelogError.INVALID_KIND, message)]},
        )
    return str(kind)


@transaction.atomic
def changelog_create(
    *, acting_user: ActingUser, service: Service, kind: str, content: Mapping[str, Any], now: datetime | None = None
) -> Changelog:
    """A new changelog with its first revision as a draft. ``content`` is checked here as a whole
    (400 ``invalid_input`` naming each field found wrong) and stored in its normal form, after
    ``kind`` (400 ``invalid_kind``)."""
    kind = kind_require(kind)
    content = content_validate(kind=kind, content=content)
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
    *, acting_user: ActingUser, changelog: Changelog, changes: Mapping[str, Any], now: datetime | None = None
) -> ChangelogRevision:
    """Replace the top-level content fields in ``changes``. Under the changelog's lock, taken
    here, the acting user must manage its service (403 ``changelog_read_only``), ``changes``
    may name only content fields, and the current content with them is checked as a whole
    (400); then a draft is edited in place, while a submitted (or decided) changelog gets a new
    draft revision and its earlier revision is superseded, so approvals of the earlier content
    no longer count."""
    changelog_lock_to_change(acting_user=acting_user, changelog=changelog)
    reject_unknown_fields(changes, CONTENT_FIELDS)
    revision = revision_current(changelog=changelog)
    content = content_validate(kind=changelog.kind, content={**revision.content, **changes})
    now = now or timezone.now()
    if changelog.status in CLOSED:
        raise Conflict(
            ChangelogError.CHANGELOG_CLOSED,
            f"The changelog is {changelog.status}; a new deployment needs a new changelog.",
        )
    changed = _changes(revision.content, content)
    if revision.status == RevisionStatus.DRAFT:
        revision.content = content
        for field, value in _revision_fields(content).items():
            setattr(revision, field, value)
        revision.save(update_fields=["content", "artifact_digest", "source_revision"])
        action = ChangelogAction.CHANGELOG_EDITED
    else:
        previous = revision
        previous.status = RevisionStatus.SUPERSEDED
        previous.save(update_fields=["status"])
        revision = ChangelogRevision.objects.create(
            changelog=changelog,
            number=previous.number + 1,
            status=RevisionStatus.DRAFT,
            content=content,
            created_by=acting_user,
            created_at=now,
            **_revision_fields(content),
        )
        revision.evidence.set(Evidence.objects.filter(revisions__id=previous.pk))
        changelog.current_revision = revision
        action = ChangelogAction.CHANGELOG_REVISED
    changelog.updated_at = now
    changelog.save(update_fields=["current_revision", "updated_at"])
    audit.record(
        actor=acting_user,
        action=action,
        target=changelog,
        data={"revision": revision.number, "changes": changed},
    )
    changelog_status_change(
        acting_user=acting_user, changelog=changelog, status=ChangelogStatus.DRAFT, cause=action, now=now
    )
    return revision


@transaction.atomic
def changelog_submit(
    *, acting_user: ActingUser, changelog: Changelog, now: datetime | None = None
) -> ChangelogRevision:
    """Freeze the current draft revision and hash its content. ``changelog`` must be locked."""
    changelog_lock_in_place(changelog=changelog)
    now = now or business_now()
    revision = revision_current(changelog=changelog)
    if revision.status != RevisionStatus.DRAFT:
        raise Conflict(
            ChangelogError.CHANGELOG_NOT_DRAFT,
            f"Revision {revision.number} is already {revision.status}; edit the changelog to start a new revision.",
        )
    evidence = [
        {"sha256": sha256, "kind": kind, "format": fmt}
        for sha256, kind, fmt in revision.evidence.values_list("sha256", "kind", "format")
    ]
    revision.content_hash = content_hash(
        service=changelog.service.slug, kind=changelog.kind, content=revision.content, evidence=evidence
    )
    readiness = readiness_of(changelog=changelog, revision=revision)
    revision.readiness_at_submit = readiness.to_json()
    revision.status = RevisionStatus.SUBMITTED
    revision.submitted_by = acting_user
    revision.submitted_at = now
    revision.save(update_fields=["content_hash", "readiness_at_submit", "status", "submitted_by", "submitted_at"])
    audit.record(
        actor=acting_user,
        action=ChangelogAction.CHANGELOG_SUBMITTED,
        target=changelog,
        data={
            "revision": revision.number,
            "content_hash": revision.content_hash,
            "evidence": sorted(item["sha256"] for item in evidence),
            "policy": readiness.policy.label,
            "findings": [finding["code"] for finding in readiness.to_json()["findings"]],
        },
    )
    changelog_status_change(
        acting_user=acting_user,
        changelog=changelog,
        status=ChangelogStatus.SUBMITTED,
        cause=ChangelogAction.CHANGELOG_SUBMITTED,
        now=now,
    )
    return revision


@transaction.atomic
def changelog_status_change(
    *, acting_user: ActingUser, changelog: Changelog, status: str, cause: str, now: datetime | None = None
) -> bool:
    """The one place a changelog's status changes (changelogs/lifecycle.py says which change may
    follow which). Locks the row, re-reads the status under the lock, and records the old and
    new status with what caused the change. Returns whether the status changed; the same
    status again changes nothing and records nothing."""
    now = now or timezone.now()
    old = Changelog.objects.select_for_update(no_key=True).values_list("status", flat=True).get(pk=changelog.pk)
    changelog.status = old
    if old == status:
        return False
    if not may_change(old, status):
        raise Conflict(
            ChangelogError.STATUS_CHANGE_NOT_ALLOWED,
            f"A {old} changelog cannot become {status}.",
        )
    changelog.status = status
    changelog.updated_at = now
    Changelog.objects.filter(pk=changelog.pk).update(status=status, updated_at=now)
    audit.record(
        actor=acting_user,
        action=ChangelogAction.CHANGELOG_STATUS_CHANGED,
        target=changelog,
        data={"from": old, "to": status, "cause": str(cause)},
    )
    return True


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
def catalog_save(*, acting_user: ActingUser | Actor, instance: Domain | Service | Journey) -> None:
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
def catalog_delete(*, acting_user: ActingUser, instance: Domain | Service | Journey) -> None:
    """Delete a catalog entry; anything still referring to it (PROTECT) stops the deletion."""
    values = _catalog_values(instance)
    target = (f"{instance._meta.app_label}.{instance._meta.model_name}", str(instance.pk))
    instance.delete()
    audit.record(actor=acting_user, action=_CATALOG_ACTIONS[type(instance)][1], target=target, data={"deleted": values})


@transaction.atomic
def evidence_add(
    *,
    acting_user: ActingUser,
    changelog: Changelog,
    data: bytes,
    file_name: str,
    kind: str,
    fmt: str | None = None,
    tool: str = "",
    environment: str = "",
    artifact_digest: str = "",
    declared_journeys: list[str] | None = None,
    now: datetime | None = None,
) -> Evidence:
    """Parse, store and attach an evidence file to the current draft revision. A file that
    does not parse is refused before anything is stored. Locks the changelog; the acting user
    must manage its service (403 ``changelog_read_only``)."""
    changelog_lock_to_change(acting_user=acting_user, changelog=changelog)
    now = now or timezone.now()
    revision = revision_current(changelog=changelog)
    if revision.status != RevisionStatus.DRAFT:
        raise Conflict(
            ChangelogError.CHANGELOG_NOT_DRAFT,
            "Evidence can be added to a draft only; edit the changelog to start a new revision.",
        )
    problem = file_name_problem(file_name)
    if problem:
        raise InvalidInput.on_field("file", ChangelogError.INVALID_FILE_NAME, problem)
    if len(data) > settings.EVIDENCE_MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(
            ChangelogError.EVIDENCE_TOO_LARGE,
            f"Evidence files may be at most {settings.EVIDENCE_MAX_UPLOAD_BYTES} bytes.",
        )
    if not data:
        message = "The file is empty."
        raise InvalidInput(
            parsers.ParseErrorCode.EMPTY_FILE, message, fields={"file": [field_error("empty_file", message)]}
        )
    _require_environment(changelog=changelog, kind=kind, environment=environment)
    fmt = _evidence_format(data, file_name, kind, fmt)
    try:
        summary = parsers.parse(fmt, data)
    except parsers.EvidenceParseError as error:
        message = f"{error.message} ({error.location})" if error.location else error.message
        raise InvalidInput.on_field("file", error.code, message) from error
    sha256, key = blob_put(data)
    evidence = Evidence.objects.create(
        changelog=changelog,
        added_in_revision=revision.number,
        kind=kind,
        format=fmt,
        file_name=file_name_clean(file_name),
        size=len(data),
        sha256=sha256,
        media_type=_MEDIA_TYPES.get(fmt) or mimetypes.guess_type(file_name)[0] or "application/octet-stream",
        storage_key=key,
        tool=tool,
        environment=environment,
        artifact_digest=artifact_digest,
        declared_journeys=list(declared_journeys or []),
        parser_version=parsers.FORMATS[fmt].parser_version,
        summary=summary.to_dict(),
        verdict=summary.verdict,
        uploaded_by=acting_user,
        uploaded_at=now,
    )
    evidence.revisions.add(revision)
    changelog.updated_at = now
    changelog.save(update_fields=["updated_at"])
    audit.record(
        actor=acting_user,
        action=ChangelogAction.EVIDENCE_ADDED,
        target=changelog,
        data={
            "revision": revision.number,
            "evidence": str(evidence.id),
            "sha256": sha256,
            "artifact_digest": artifact_digest,
            "size": evidence.size,
            "kind": kind,
            "format": fmt,
            "file_name": evidence.file_name,
            "verdict": evidence.verdict,
            "parser_version": evidence.parser_version,
        },
    )
    return evidence


def _require_environment(*, changelog: Changelog, kind: str, environment: str) -> None:
    """Evidence that could never count is refused rather than stored: sanity and performance
    results must name an environment the policy in force accepts."""
    policy = policy_for(service=changelog.service)
    allowed = environments_required(policy.rules, kind)
    if allowed and environment not in allowed:
        said = f"says it ran in {environment!r}" if environment else "names no environment"
        message = (
            f"This {kind} evidence {said}; the policy {policy.label} counts {kind} evidence only from "
            f"{', '.join(allowed)}: name it with 'environment'."
        )
        raise InvalidInput.on_field("environment", ChangelogError.EVIDENCE_ENVIRONMENT_REQUIRED, message)


_MEDIA_TYPES = {
    "junit": "application/xml",
    "playwright_json": "application/json",
    "ctrf_json": "application/json",
    "k6_summary": "application/json",
    "locust_csv": "text/csv",
    "locust_json": "application/json",
    "jmeter_jtl": "text/csv",
    "sarif": "application/sarif+json",
    "pip_audit": "application/json",
    "cyclonedx": "application/vnd.cyclonedx+json",
    "intoto": "application/vnd.in-toto+json",
}


def _evidence_format(data: bytes, file_name: str, kind: str, fmt: str | None) -> str:
    """The format to parse with: the one named (it must be of the kind), else the one detected.
    Anything may be kept as a plain document."""
    if fmt is not None:
        if fmt not in parsers.FORMATS:
            message = f"Unknown format {fmt!r}; known formats: {', '.join(sorted(parsers.FORMATS))}."
            raise InvalidInput.on_field("format", ChangelogError.EVIDENCE_FORMAT_UNKNOWN, message)
        _require_kind(fmt, kind)
        return fmt
    detected = parsers.detect_format(data, file_name)
    if kind == EvidenceKind.DOCUMENT:
        is_document = detected is not None and str(parsers.FORMATS[detected].kind) == EvidenceKind.DOCUMENT
        return detected if is_document and detected else "document"
    if detected is None:
        message = f"Could not tell what this {kind} file is; name its format explicitly."
        raise InvalidInput.on_field("format", ChangelogError.EVIDENCE_FORMAT_NOT_DETECTED, message)
    _require_kind(detected, kind)
    return detected


def _require_kind(fmt: str, kind: str) -> None:
    format_kind = str(parsers.FORMATS[fmt].kind)
    if format_kind != kind:
        message = f"This is a {fmt} file, which is {format_kind} evidence, not {kind}."
        raise InvalidInput.on_field("kind", ChangelogError.EVIDENCE_KIND_MISMATCH, message)


@transaction.atomic
def evidence_detach(
    *, acting_user: ActingUser, changelog: Changelog, evidence: Evidence, now: datetime | None = None
) -> None:
    """Take a file off the current draft (it stays stored and in earlier revisions). Locks the
    changelog; the acting user must manage its service (403 ``changelog_read_only``)."""
    changelog_lock_to_change(acting_user=acting_user, changelog=changelog)
    now = now or timezone.now()
    revision = revision_current(changelog=changelog)
    if revision.status != RevisionStatus.DRAFT:
        raise Conflict(ChangelogError.CHANGELOG_NOT_DRAFT, "Evidence can be taken off a draft only.")
    evidence.revisions.remove(revision)
    changelog.updated_at = now
    changelog.save(update_fields=["updated_at"])
    audit.record(
        actor=acting_user,
        action=ChangelogAction.EVIDENCE_DETACHED,
        target=changelog,
        data={"revision": revision.number, "evidence": str(evidence.id), "sha256": evidence.sha256},
    )


@transaction.atomic
def policy_create(
    *,
    acting_user: ActingUser,
    domain: Domain,
    service: Service | None = None,
    rules: dict[str, Any],
    reason: str,
    now: datetime | None = None,
) -> Policy:
    """A new version of the domain's (or a service's) policy; earlier versions stay as they were."""
    try:
        normal = PolicyRules.from_json(rules).to_json()
    except PolicyError as error:
        raise InvalidInput(
            ChangelogError.INVALID_POLICY,
            str(error),
            fields={"rules": [field_error(ChangelogError.INVALID_POLICY, str(error))]},
        ) from error
    if service is not None and service.domain_id != domain.pk:
        raise InvalidInput(ChangelogError.INVALID_POLICY, "The service does not belong to the domain.")
    # Lock the domain so that two editors cannot both make version n+1 of its policies.
    Domain.objects.select_for_update(no_key=True).filter(pk=domain.pk).first()
    scope = Policy.objects.filter(domain=domain, service=service)
    latest = scope.order_by("-version").values_list("version", flat=True).first() or 0
    policy = Policy.objects.create(
        domain=domain,
        service=service,
        version=latest + 1,
        rules=normal,
        reason=reason,
        created_by=acting_user,
        created_at=now or timezone.now(),
    )
    previous = scope.filter(version=latest).values_list("rules", flat=True).first() or {}
    audit.record(
        actor=acting_user,
        action=ChangelogAction.POLICY_CREATED,
        target=policy,
        data={
            "scope": f"service:{service.slug}" if service else f"domain:{domain.slug}",
            "version": policy.version,
            "reason": reason,
            "changes": _changes(previous, normal),
        },
    )
    return policy


def evidence_bytes(*, evidence: Evidence) -> bytes:
    """The stored bytes, refused loudly if storage no longer holds exactly what was uploaded."""
    try:
        return blob_read(evidence.storage_key, sha256=evidence.sha256)
    except EvidenceCorrupted as error:
        raise IntegrityFailure(
            ChangelogError.EVIDENCE_CORRUPTED,
            "The stored file no longer matches its SHA-256; it has been altered outside Release Gate.",
        ) from error


# --- Commit authors read from the source host (releasegate/github_commits.py reads them) ------


def commit_authors_claim(*, revision: ChangelogRevision, now: datetime, until: datetime) -> CommitAuthors:
    """Mark the revision's authors as being read until ``until`` (a lease: a read lost with its
    worker is picked up again after it). Bookkeeping of the reader, not audited."""
    read, _ = CommitAuthors.objects.get_or_create(
        revision=revision, defaults={"status": CommitAuthorsStatus.RETRY, "created_at": now}
    )
    read.next_attempt_at = until
    read.save(update_fields=["next_attempt_at"])
    return read


@transaction.atomic
def commit_authors_record(
    *,
    revision: ChangelogRevision,
    status: str,
    source: str = "",
    repository: str = "",
    base: str = "",
    head: str = "",
    pull_request: int | None = None,
    commits: list[str] | None = None,
    authors: list[dict[str, str]] | None = None,
    error: str = "",
    next_attempt_at: datetime | None = None,
    now: datetime | None = None,
) -> CommitAuthors:
    """Record one attempt to read a revision's commit authors. A final outcome (read, read in
    part, failed) is audited on the changelog, with the authors found and where they came from;
    once final, the read is never changed again."""
    now = now or timezone.now()
    read, _ = CommitAuthors.objects.select_for_update().get_or_create(
        revision=revision, defaults={"status": CommitAuthorsStatus.RETRY, "created_at": now}
    )
    if read.status != CommitAuthorsStatus.RETRY:
        return read  # another attempt got there first
    read.status = status
    read.source = source
    read.repository = repository
    read.base = base
    read.head = head
    read.pull_request = pull_request
    read.commits = list(commits or [])
    read.authors = list(authors or [])
    read.attempts += 1
    read.last_error = error[:1000]
    read.next_attempt_at = next_attempt_at
    read.read_at = now if status in (CommitAuthorsStatus.READ, CommitAuthorsStatus.INCOMPLETE) else None
    read.save()
    if status != CommitAuthorsStatus.RETRY:
        audit.record(
            actor=SYSTEM,
            action=ChangelogAction.COMMIT_AUTHORS_READ,
            target=revision.changelog,
            data={
                "revision": revision.number,
                "status": status,
                "source": source,
                "repository": repository,
                "base": base,
                "head": head,
                "pull_request": pull_request,
                "commits": len(read.commits),
                "authors": read.authors,
                "attempts": read.attempts,
                "error": read.last_error,
            },
        )
    return read
