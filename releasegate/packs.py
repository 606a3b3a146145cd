"""Evidence packs for auditors: gather the data, run the builds, keep the results.

The rendering, signing and archiving live in ``audit.packs`` and work on plain data; this
module reads the database into that data and runs builds as Celery tasks that report progress.
A pack's files become visible only when its job is done, in the same transaction as the audit
event that records their SHA-256: a build that dies half way leaves nothing to download, and
is retried.
"""

import base64
import dataclasses
import functools
import hashlib
import io
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

import audit
from approvals.models import Approval, Retrospective, RetrospectiveStatus
from approvals.selectors import approval_state_of
from audit.events import format_time
from audit.models import AuditEvent, Checkpoint, PackJob, PackKind, PackStatus
from audit.packs.archive import (
    build_changelog_zip,
    changelog_manifest,
    changelog_members,
    standalone_verifier_sources,
    write_population_csv,
)
from audit.packs.data import (
    ApprovalItem,
    AuditItem,
    ChangelogPack,
    ChangeRow,
    DecisionItem,
    DeploymentItem,
    DeploymentRow,
    EvidenceItem,
    ExceptionRow,
    PopulationPack,
)
from audit.packs.pdf import render_changelog_pdf, render_population_pdf
from audit.packs.sample import sample_changelog_ids
from audit.packs.signing import certificate_sha256, generate_development_certificate, sign_manifest, sign_pdf
from audit.selectors import event_canonical_bytes, inclusion_proofs
from audit.sequencer import database_now, sequence_pending
from audit.signing import verifier_key
from audit.witnessing import note_with_cosignatures
from changelogs.authors import revision_authors
from changelogs.models import Changelog, ChangelogRevision, CommitAuthors, Domain, RevisionStatus
from changelogs.selectors import changelog_list_visible, revision_current
from changelogs.storage import blob_read, evidence_storage, stored_write
from core.actors import ActingUser
from core.errors import Conflict, InvalidInput, NotFound
from incidents.selectors import incidents_of_changelog
from outbox.services import outbox_put, publish_many
from releasegate.audit_actions import PackAction
from releasegate.models import Deployment, GateDecision, GateOutcome
from releasegate.population_json import population_json
from tlog.merkle import leaf_hash

logger = logging.getLogger(__name__)
T = TypeVar("T")


class PackError(StrEnum):
    PACK_NOT_FOUND = "pack_not_found"
    PACK_NOT_READY = "pack_not_ready"
    INVALID_PERIOD = "invalid_period"
    PERIOD_TOO_LONG = "period_too_long"
    PERIOD_BEFORE_RECORDS = "period_before_records"


def _time(value: datetime | None) -> str:
    return format_time(value) if value else ""


# ---------------------------------------------------------------- signing key and certificate


@functools.cache
def pack_signing_material() -> tuple[bytes, bytes, bytes]:
    """(key PEM, certificate PEM, chain PEM) from settings. With DEBUG a development key and a
    self-signed certificate are made on first use (what `make run` relies on)."""
    key_path, cert_path = Path(settings.PACK_SIGNING_KEY_FILE), Path(settings.PACK_SIGNING_CERT_FILE)
    if settings.DEBUG and not key_path.exists() and not cert_path.exists():
        key_pem, cert_pem = generate_development_certificate(
            f"{settings.ORGANISATION_NAME} evidence packs (development)", settings.ORGANISATION_NAME
        )
        key_path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as key_file:
            key_file.write(key_pem)
        cert_path.write_bytes(cert_pem)
    chain = Path(settings.PACK_SIGNING_CHAIN_FILE).read_bytes() if settings.PACK_SIGNING_CHAIN_FILE else b""
    return key_path.read_bytes(), cert_path.read_bytes(), chain


def _sign(pdf: bytes, reason: str) -> bytes:
    key_pem, cert_pem, chain_pem = pack_signing_material()
    return sign_pdf(
        pdf,
        key_pem=key_pem,
        cert_pem=cert_pem,
        chain_pem=chain_pem,
        timestamp_url=settings.PACK_TIMESTAMP_URL,
        reason=reason,
        location=settings.ORGANISATION_NAME,
        key_passphrase=settings.PACK_SIGNING_KEY_PASSPHRASE.encode() or None,
    )


# ---------------------------------------------------------------- changelog pack data


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """What a parser found, in a few lines for people."""
    kind = summary.get("kind")
    if kind == "sanity":
        lines = [
            f"{summary.get('tests', 0)} tests: {summary.get('passed', 0)} passed, {summary.get('failed', 0)} failed, "
            f"{summary.get('errors', 0)} errors, {summary.get('skipped', 0)} skipped, {summary.get('flaky', 0)} flaky"
        ]
        journeys = summary.get("journeys") or {}
        if journeys:
            lines.append("journeys: " + ", ".join(f"{j} {o}" for j, o in sorted(journeys.items())))
        return lines
    if kind == "performance":
        latency = summary.get("latency_ms") or {}
        known = ", ".join(f"{k} {v:g} ms" for k, v in latency.items() if v is not None)
        rate = summary.get("error_rate")
        lines = [f"{summary.get('requests')} requests, error rate {rate if rate is None else f'{rate:.2%}'}", known]
        crossed = [t["metric"] + " " + t["expression"] for t in summary.get("thresholds", []) if t.get("crossed")]
        if crossed:
            lines.append("thresholds crossed: " + "; ".join(crossed))
        return [line for line in lines if line]
    if kind == "security":
        counts = summary.get("findings_by_severity") or summary.get("findings") or {}
        tools = ", ".join(f"{t['name']} {t.get('version') or ''}".strip() for t in summary.get("tools", []))
        lines = ["findings: " + ", ".join(f"{severity} {count}" for severity, count in counts.items())]
        if tools:
            lines.insert(0, f"tools: {tools}")
        return lines
    keys = ("spec_version", "component_count", "predicate_type", "size_bytes")
    return [
        ", ".join(f"{key} {summary[key]}" for key in keys if summary.get(key) is not None) or summary.get("format", "")
    ]


def _audit_items(changelog: Changelog, checkpoint: Checkpoint) -> list[AuditItem]:
    decision_ids = [str(pk) for pk in GateDecision.objects.filter(changelog=changelog).values_list("id", flat=True)]
    deployment_ids = [str(pk) for pk in Deployment.objects.filter(changelog=changelog).values_list("id", flat=True)]
    events = (
        AuditEvent.objects.filter(
            Q(target_type="changelogs.changelog", target_id=str(changelog.pk))
            | Q(target_type="releasegate.gatedecision", target_id__in=decision_ids)
            | Q(target_type="releasegate.deployment", target_id__in=deployment_ids),
            leaf__leaf_index__lt=checkpoint.tree_size,
        )
        .select_related("leaf")
        .order_by("leaf__leaf_index")
    )
    found = [
        (event, canonical, leaf_hash(canonical)) for event in events for canonical in [event_canonical_bytes(event)]
    ]
    # The proofs are checked against the signed checkpoint for exactly the bytes the pack
    # ships: a pack never carries an event or a proof that the verifier would refuse.
    proofs = inclusion_proofs(
        leaf_hashes={event.leaf.leaf_index: hashed for event, _, hashed in found}, checkpoint=checkpoint
    )
    return [
        AuditItem(
            leaf_index=event.leaf.leaf_index,
            event_id=event.pk,
            time=_time(event.created_at),
            actor=event.actor,
            action=event.action,
            event=canonical.decode("utf-8"),
            leaf_hash=hashed.hex(),
            proof=[node.hex() for node in proofs[event.leaf.leaf_index]],
        )
        for event, canonical, hashed in found
    ]


def _pack_revision(changelog: Changelog) -> ChangelogRevision:
    """The revision the pack is about: the last one submitted, else the current draft."""
    submitted: ChangelogRevision | None = (
        changelog.revisions.exclude(status=RevisionStatus.DRAFT).order_by("-number").first()
    )
    return submitted or revision_current(changelog=changelog)


def changelog_pack_data(*, changelog: Changelog, now: datetime) -> tuple[ChangelogPack, dict[str, bytes]]:
    """The pack's data, and the evidence files by their path in the ZIP."""
    checkpoint = Checkpoint.objects.order_by("-tree_size").first()
    if checkpoint is None:
        raise Conflict(PackError.PACK_NOT_READY, "The audit log has no checkpoint yet.")
    revision = _pack_revision(changelog)
    state = approval_state_of(changelog=changelog, now=now, revision=revision) if revision.content_hash else None
    evidence = list(revision.evidence.select_related("uploaded_by").order_by("uploaded_at", "id"))
    files: dict[str, bytes] = {}
    items = []
    for item in evidence:
        archive_name = f"evidence/{item.sha256[:12]}-{item.file_name}"
        files[archive_name] = blob_read(item.storage_key, sha256=item.sha256)
        items.append(
            EvidenceItem(
                id=str(item.pk),
                kind=item.kind,
                format=item.format,
                file_name=item.file_name,
                size=item.size,
                sha256=item.sha256,
                verdict=item.verdict,
                parser_version=item.parser_version,
                uploaded_by=item.uploaded_by.username,
                uploaded_at=_time(item.uploaded_at),
                summary_lines=summary_lines(item.summary),
                archive_name=archive_name,
            )
        )
    approvals = [
        ApprovalItem(
            decision=approval.decision,
            approver=approval.approver.username,
            authorities=list(approval.authorities),
            revision=approval.revision.number,
            content_hash=approval.content_hash,
            decided_at=_time(approval.decided_at),
            expires_at=_time(approval.expires_at),
            retrospective=approval.retrospective,
            reason=approval.reason,
            counts=bool(state and str(approval.pk) in state.counted),
            not_counted_because=state.not_counted.get(str(approval.pk)) if state else None,
            signature=_signature_of(approval, changelog),
        )
        for approval in Approval.objects.filter(changelog=changelog)
        .select_related("approver", "revision", "signature")
        .order_by("decided_at")
    ]
    decisions = [
        DecisionItem(
            id=str(decision.pk),
            evaluated_at=_time(decision.evaluated_at),
            environment=decision.environment,
            artifact_digest=decision.artifact_digest,
            outcome=decision.outcome,
            reasons=[reason["code"] for reason in decision.reasons],
            requested_by=decision.requested_by.username,
            policy=decision.policy,
        )
        for decision in GateDecision.objects.filter(changelog=changelog)
        .select_related("requested_by")
        .order_by("evaluated_at")
    ]
    deployments = [
        DeploymentItem(
            id=str(deployment.pk),
            reported_at=_time(deployment.reported_at),
            environment=deployment.environment,
            status=deployment.status,
            artifact_digest=deployment.artifact_digest,
            unauthorised=deployment.unauthorised,
            pipeline_run_url=deployment.pipeline_run_url,
            reported_by=deployment.reported_by.username,
        )
        for deployment in Deployment.objects.filter(changelog=changelog)
        .select_related("reported_by")
        .order_by("reported_at")
    ]
    readiness = revision.readiness_at_submit or {"policy": "", "findings": []}
    pack = ChangelogPack(
        organisation=settings.ORGANISATION_NAME,
        generated_at=_time(now),
        changelog_id=str(changelog.pk),
        service=changelog.service.slug,
        domain=changelog.service.domain.name,
        kind=changelog.kind,
        status=changelog.status,
        revision=revision.number,
        revision_status=revision.status,
        content_hash=revision.content_hash,
        content=revision.content,
        created_by=changelog.created_by.username,
        created_at=_time(changelog.created_at),
        submitted_by=revision.submitted_by.username if revision.submitted_by else "",
        submitted_at=_time(revision.submitted_at),
        readiness_policy=readiness["policy"],
        readiness_findings=[(f["code"], f["message"]) for f in readiness["findings"]],
        evidence=items,
        approvals=approvals,
        decisions=decisions,
        deployments=deployments,
        audit_events=_audit_items(changelog, checkpoint),
        checkpoint=note_with_cosignatures(checkpoint),
        checkpoint_size=checkpoint.tree_size,
        public_key=verifier_key(),
        signing_certificate_sha256=certificate_sha256(pack_signing_material()[1]),
        incidents=[
            (incident.reference, relation, incident.severity, incident.title)
            for relation, linked in incidents_of_changelog(changelog=changelog).items()
            for incident in linked
        ],
    )
    return pack, files


# ---------------------------------------------------------------- population pack data

_CHUNK = 500


def _period_changelogs(start: datetime, end: datetime, domain: str) -> Any:
    submitted = ChangelogRevision.objects.filter(submitted_at__gte=start, submitted_at__lt=end).values("changelog_id")
    deployed = Deployment.objects.filter(reported_at__gte=start, reported_at__lt=end).values("changelog_id")
    changelogs = Changelog.objects.filter(Q(pk__in=submitted) | Q(pk__in=deployed))
    if domain:
        changelogs = changelogs.filter(service__domain__slug=domain)
    return changelogs


def _change_rows(start: datetime, end: datetime, domain: str, progress: Any = None) -> Iterator[ChangeRow]:
    """One row per change of the period, computed a chunk of changes at a time with a fixed
    number of queries per chunk (never one query per change)."""
    ids = list(_period_changelogs(start, end, domain).order_by("created_at", "id").values_list("id", flat=True))
    for offset in range(0, len(ids), _CHUNK):
        chunk = ids[offset : offset + _CHUNK]
        changelogs = {
            c.pk: c for c in Changelog.objects.filter(pk__in=chunk).select_related("service", "service__domain")
        }
        revisions: dict[Any, list[Any]] = {}
        for revision in ChangelogRevision.objects.filter(changelog_id__in=chunk).order_by("number"):
            revisions.setdefault(revision.changelog_id, []).append(revision)
        uploaders: dict[Any, set[int]] = {}
        for revision_id, uploader in ChangelogRevision.evidence.through.objects.filter(
            changelogrevision__changelog_id__in=chunk
        ).values_list("changelogrevision_id", "evidence__uploaded_by_id"):
            uploaders.setdefault(revision_id, set()).add(uploader)
        approvals: dict[Any, list[Any]] = {}
        for approval in Approval.objects.filter(changelog_id__in=chunk).select_related("approver"):
            approvals.setdefault(approval.changelog_id, []).append(approval)
        authors_read: dict[Any, Mapping[str, Any]] = {
            read["revision_id"]: read
            for read in CommitAuthors.objects.filter(revision__changelog_id__in=chunk).values(
                "revision_id", "status", "authors"
            )
        }
        deployments: dict[Any, list[Any]] = {}
        for deployment in Deployment.objects.filter(changelog_id__in=chunk).only(
            "changelog_id", "reported_at", "unauthorised"
        ):
            deployments.setdefault(deployment.changelog_id, []).append(deployment)
        for changelog_id in chunk:
            yield _change_row(
                changelogs[changelog_id],
                revisions.get(changelog_id, []),
                uploaders,
                approvals.get(changelog_id, []),
                deployments.get(changelog_id, []),
                authors_read=authors_read,
            )
        if progress:
            progress(min(offset + _CHUNK, len(ids)), len(ids))


def _change_row(
    changelog: Changelog,
    revisions: list[Any],
    uploaders: dict[Any, set[int]],
    approvals: list[Any],
    deployments: list[Any],
    *,
    authors_read: Mapping[Any, Mapping[str, Any]],
) -> ChangeRow:
    submitted = [r for r in revisions if r.status != RevisionStatus.DRAFT]
    revision = submitted[-1] if submitted else revisions[-1]
    requesters = (
        {changelog.created_by_id}
        | {r.created_by_id for r in revisions}
        | {r.submitted_by_id for r in revisions if r.submitted_by_id}
    )
    read = authors_read.get(revision.pk, {})
    authors = revision_authors(content=revision.content, status=read.get("status", ""), read=read.get("authors", ()))
    approved = [a for a in approvals if a.revision_id == revision.pk and a.decision == "approved"]
    conflicted = [
        a
        for a in approved
        if a.approver_id in requesters
        or a.approver_id in uploaders.get(revision.pk, set())
        or authors.excludes(username=a.approver.username, email=a.approver.email or "")
    ]
    first_deployment = min((d.reported_at for d in deployments), default=None)
    readiness = revision.readiness_at_submit or {}
    return ChangeRow(
        changelog_id=str(changelog.pk),
        service=changelog.service.slug,
        domain=changelog.service.domain.slug,
        kind=changelog.kind,
        status=changelog.status,
        risk_tier=revision.content.get("risk_tier", ""),
        artifact_digest=revision.artifact_digest,
        submitted_at=_time(revision.submitted_at),
        approved_at=_time(max((a.decided_at for a in approved), default=None))
        if changelog.status != "submitted"
        else "",
        first_deployed_at=_time(first_deployment),
        # A covered deployment had an allow decision, which the gate gives only to approved changes.
        approval_before_deploy=None if not deployments else all(not d.unauthorised for d in deployments),
        separation_of_duties=not conflicted,
        evidence_complete=bool(readiness.get("ready")),
        rollback_plan=bool(str(revision.content.get("rollback_plan", "")).strip()),
        deployments=len(deployments),
    )


def _deployment_rows(start: datetime, end: datetime, domain: str) -> Iterator[DeploymentRow]:
    deployments = Deployment.objects.filter(reported_at__gte=start, reported_at__lt=end)
    if domain:
        deployments = deployments.filter(service__domain__slug=domain)
    for row in (
        deployments.order_by("reported_at", "id")
        .values_list(
            "id",
            "reported_at",
            "service__slug",
            "service__domain__slug",
            "environment",
            "status",
            "artifact_digest",
            "changelog_id",
            "unauthorised",
        )
        .iterator(chunk_size=2000)
    ):
        yield DeploymentRow(
            deployment_id=str(row[0]),
            reported_at=_time(row[1]),
            service=row[2],
            domain=row[3],
            environment=row[4],
            status=row[5],
            artifact_digest=row[6],
            changelog_id=str(row[7] or ""),
            unauthorised=row[8],
        )


def _exceptions(start: datetime, end: datetime, domain: str) -> list[ExceptionRow]:
    found: list[ExceptionRow] = []
    unauthorised = Deployment.objects.filter(reported_at__gte=start, reported_at__lt=end, unauthorised=True)
    retrospectives = Retrospective.objects.filter(
        Q(status=RetrospectiveStatus.OVERDUE) | Q(completed_at__gt=F("due_at")),
        due_at__gte=start,
        due_at__lt=end,
    )
    if domain:
        unauthorised = unauthorised.filter(service__domain__slug=domain)
        retrospectives = retrospectives.filter(changelog__service__domain__slug=domain)
    for deployment in unauthorised.select_related("service").order_by("reported_at"):
        denied = (
            GateDecision.objects.filter(
                service=deployment.service_id,
                environment=deployment.environment,
                artifact_digest=deployment.artifact_digest,
                outcome=GateOutcome.DENY,
                evaluated_at__lte=deployment.reported_at,
            )
            .order_by("-evaluated_at")
            .first()
        )
        found.append(
            ExceptionRow(
                kind="deployed_while_denied" if denied else "unauthorised_deployment",
                reference=str(deployment.pk),
                service=deployment.service.slug,
                at=_time(deployment.reported_at),
                detail=(
                    f"{deployment.status} {deployment.artifact_digest} to {deployment.environment}"
                    + (f"; denied: {', '.join(r['code'] for r in denied.reasons)}" if denied else "; no allow decision")
                ),
            )
        )
    for retrospective in retrospectives.select_related("changelog__service").order_by("due_at"):
        late = retrospective.status == RetrospectiveStatus.COMPLETED
        found.append(
            ExceptionRow(
                kind="retrospective_late" if late else "retrospective_overdue",
                reference=str(retrospective.changelog_id),
                service=retrospective.changelog.service.slug,
                at=_time(retrospective.due_at),
                detail=(
                    f"completed {_time(retrospective.completed_at)}, after its deadline"
                    if late
                    else "the full approvals of the hotfix's tier are still missing"
                ),
            )
        )
    return found


def population_pack_data(
    *, start: datetime, end: datetime, domain: str, sample_size: int, seed: int, now: datetime, progress: Any = None
) -> PopulationPack:
    checkpoint = Checkpoint.objects.order_by("-tree_size").first()
    if checkpoint is None:
        raise Conflict(PackError.PACK_NOT_READY, "The audit log has no checkpoint yet.")
    changelogs = _period_changelogs(start, end, domain)
    change_ids = sorted(str(pk) for pk in changelogs.values_list("id", flat=True))
    deployments = Deployment.objects.filter(reported_at__gte=start, reported_at__lt=end)
    if domain:
        deployments = deployments.filter(service__domain__slug=domain)
    exceptions = _exceptions(start, end, domain)
    leaves = AuditEvent.objects.filter(created_at__gte=start, created_at__lt=end, leaf__isnull=False)
    first_leaf = leaves.order_by("leaf__leaf_index").values_list("leaf__leaf_index", flat=True).first()
    last_leaf = leaves.order_by("-leaf__leaf_index").values_list("leaf__leaf_index", flat=True).first()
    totals = {
        "changes": len(change_ids),
        "deployments": deployments.count(),
        "unauthorised_deployments": sum(1 for e in exceptions if e.kind == "unauthorised_deployment"),
        "deployed_while_denied": sum(1 for e in exceptions if e.kind == "deployed_while_denied"),
        "retrospectives_overdue": sum(1 for e in exceptions if e.kind == "retrospective_overdue"),
        "retrospectives_late": sum(1 for e in exceptions if e.kind == "retrospective_late"),
    }
    # Reproducible on purpose: the seed is printed in the pack, with how to draw the sample again.
    sample = sample_changelog_ids(change_ids, seed=seed, size=sample_size)
    return PopulationPack(
        organisation=settings.ORGANISATION_NAME,
        generated_at=_time(now),
        period_start=_time(start),
        period_end=_time(end),
        domain=domain,
        changes=_LazyRows(lambda: _change_rows(start, end, domain, progress)),
        deployments=_LazyRows(lambda: _deployment_rows(start, end, domain)),
        exceptions=exceptions,
        totals=totals,
        audit_first_leaf=first_leaf if first_leaf is not None else -1,
        audit_last_leaf=last_leaf if last_leaf is not None else -1,
        checkpoint=checkpoint.signed_note,
        public_key=verifier_key(),
        signing_certificate_sha256=certificate_sha256(pack_signing_material()[1]),
        sample_seed=seed,
        sample_size=len(sample),
        sample=sample,
    )


class _LazyRows:
    """Rows read from the database afresh each time they are iterated (the PDF and the CSV
    each take one pass), so that no pass holds them all."""

    def __init__(self, rows: Any) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows())


# ---------------------------------------------------------------- jobs


def _params_key(kind: str, params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps({"kind": kind, "params": params}, sort_keys=True).encode()).hexdigest()


@transaction.atomic
def pack_request(
    *, acting_user: ActingUser, kind: str, params: dict[str, Any], now: datetime | None = None
) -> tuple[PackJob, bool]:
    """Ask for a pack. The same request while its job is queued or running, or done within
    PACK_REUSE_MINUTES, returns that job rather than building again. A job that is stuck (its
    builder's lease ran out, or it waited in the queue past PACK_QUEUED_STALE_SECONDS) is handed
    over again on the way; a failed job is not reused: asking again starts a new one."""
    now = now or database_now()
    key = _params_key(kind, params)
    reusable = (
        PackJob.objects.select_for_update()
        .filter(params_key=key)
        .filter(
            Q(status__in=[PackStatus.QUEUED, PackStatus.RUNNING])
            | Q(status=PackStatus.DONE, created_at__gte=now - timedelta(minutes=settings.PACK_REUSE_MINUTES))
        )
    )
    existing: PackJob | None = reusable.order_by("-created_at").first()
    if existing is not None:
        if existing.pk in set(_stale_jobs(now)):
            outbox_put(task=BUILD_TASK, args=[str(existing.pk)])
        return existing, False
    job = PackJob.objects.create(kind=kind, params=params, params_key=key, requested_by=acting_user, created_at=now)
    audit.record(actor=acting_user, action=PackAction.PACK_REQUESTED, target=job, data={"kind": kind, "params": params})
    outbox_put(task=BUILD_TASK, args=[str(job.pk)])
    return job, True


def _stale_jobs(now: datetime) -> Any:
    """Jobs nobody is building: running with a lease that ran out (a worker killed, a build
    that could not record its failure), or queued for longer than a hand-over takes."""
    queued_before = now - timedelta(seconds=settings.PACK_QUEUED_STALE_SECONDS)
    return PackJob.objects.filter(
        Q(status=PackStatus.RUNNING, lease_expires_at__lt=now)
        | Q(status=PackStatus.RUNNING, lease_expires_at__isnull=True, started_at__lt=queued_before)
        | Q(status=PackStatus.QUEUED, created_at__lt=queued_before, lease_owner="")
    ).values_list("id", flat=True)


BUILD_TASK = "releasegate.packs.pack_build"


def _dispatch(job_ids: Any) -> int:
    return publish_many((BUILD_TASK, [str(job_id)]) for job_id in job_ids)


def _signature_of(approval: Approval, changelog: Changelog) -> dict[str, Any] | None:
    """The approval's passkey signature with what it covers, for the standalone verifier."""
    signature = getattr(approval, "signature", None)
    if signature is None:
        return None
    return {
        "approval": str(approval.pk),
        "approver": approval.approver.username,
        "changelog": str(changelog.pk),
        "revision": approval.revision.number,
        "content_hash": approval.content_hash,
        "decision": approval.decision,
        "reason": approval.reason,
        "rp_id": signature.rp_id,
        "credential_id": signature.credential_id,
        "authenticator_data": signature.authenticator_data,
        "client_data_json": signature.client_data_json,
        "signature": signature.signature,
        "public_key_pem": signature.public_key_pem,
    }


class LeaseLost(Exception):
    """Another delivery holds the job now (ours ran out): stop, and keep nothing."""


_DB_ERRORS = (OperationalError, InterfaceError)


def _with_fresh_connection(work: Callable[[], T], *, what: str) -> T:
    """Run ``work``; on a database error (a restart, a blip, a dropped connection) close the
    connection and try again on a fresh one, for up to PACK_DB_RETRY_SECONDS. The error handler
    of a build used to write over the dead connection, fail, and leave the job running."""
    deadline = time.monotonic() + settings.PACK_DB_RETRY_SECONDS
    pause = 0.25
    while True:
        try:
            return work()
        except _DB_ERRORS as error:
            if connection.in_atomic_block or time.monotonic() + pause > deadline:
                raise
            logger.warning("pack build: database error while %s (%s); retrying on a fresh connection", what, error)
            connection.close()
            time.sleep(pause)
            pause = min(pause * 2, 4.0)


def _lease_until() -> datetime:
    return database_now() + timedelta(seconds=settings.PACK_LEASE_SECONDS)


class LeaseHeld(Exception):
    """Another delivery is building the job; look again when its lease would run out."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"another delivery holds the job for {seconds:.0f} s more")
        self.seconds = seconds


def _lease_owner() -> str:
    """Who builds: this machine and process (so that a delivery on the same machine can tell
    a holder that was killed), and a token of the delivery."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(6)}"


def _holder_is_dead(owner: str) -> bool:
    """A holder on this machine whose process is gone (a pool process killed mid-build) holds
    nothing: the redelivered message takes over at once instead of waiting out the lease."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:32] or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _claim(job_id: str, owner: str) -> PackJob | None:
    """Take the job for this delivery; None when it is done. Raises ``LeaseHeld`` while
    another delivery holds an unexpired lease on it."""
    with transaction.atomic():
        job: PackJob | None = PackJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status == PackStatus.DONE:
            return None
        now = database_now()
        if (
            job.lease_owner
            and job.lease_expires_at
            and job.lease_expires_at > now
            and not _holder_is_dead(job.lease_owner)
        ):
            raise LeaseHeld((job.lease_expires_at - now).total_seconds())
        job.status = PackStatus.RUNNING
        job.attempts += 1
        job.started_at = now
        job.progress = 0
        job.stage = "starting"
        job.error = ""
        job.lease_owner = owner
        job.lease_expires_at = now + timedelta(seconds=settings.PACK_LEASE_SECONDS)
        job.save(
            update_fields=[
                "status",
                "attempts",
                "started_at",
                "progress",
                "stage",
                "error",
                "lease_owner",
                "lease_expires_at",
            ]
        )
        return job


def _progress(job_id: Any, owner: str, percent: int, stage: str) -> None:
    """Report progress and renew the lease; a delivery that lost its lease stops here."""
    held = PackJob.objects.filter(pk=job_id, lease_owner=owner, status=PackStatus.RUNNING).update(
        progress=max(0, min(percent, 99)), stage=stage, lease_expires_at=_lease_until()
    )
    if not held:
        raise LeaseLost(f"pack job {job_id}: another delivery took it over")


def _store(job: PackJob, owner: str, name: str, data: bytes, media_type: str) -> dict[str, Any]:
    """Each delivery writes under its own folder: nothing ever overwrites the files another
    delivery recorded. The job's record points at them only once it is done."""
    key = f"packs/{job.pk}/{owner}/{name}"
    sha256 = stored_write(evidence_storage(), key, data)
    return {"storage_key": key, "sha256": sha256, "size": len(data), "media_type": media_type}


def _discard(job_id: str, owner: str) -> None:
    """Remove what this delivery wrote (a build cut short, or one another delivery beat)."""
    storage = evidence_storage()
    folder = f"packs/{job_id}/{owner}"
    try:
        names = storage.listdir(folder)[1] if storage.exists(folder) else []
        for name in names:
            storage.delete(f"{folder}/{name}")
    except OSError as error:  # an orphan file is untidy, not wrong: nothing points at it
        logger.warning("pack build: could not remove %s (%s)", folder, error)


def _finish(job_id: str, owner: str, files: dict[str, Any]) -> bool:
    """Switch the job to done with its files and the audit event, in one transaction, if
    this delivery still holds the lease."""
    with transaction.atomic():
        job = PackJob.objects.select_for_update().get(pk=job_id)
        if job.status == PackStatus.DONE or job.lease_owner != owner:
            return False
        job.status = PackStatus.DONE
        job.files = files
        job.progress = 100
        job.stage = "done"
        job.error = ""
        job.finished_at = database_now()
        job.lease_owner = ""
        job.lease_expires_at = None
        job.save(
            update_fields=[
                "status",
                "files",
                "progress",
                "stage",
                "error",
                "finished_at",
                "lease_owner",
                "lease_expires_at",
            ]
        )
        audit.record(
            actor=audit.services.SYSTEM,
            action=PackAction.PACK_BUILT,
            target=job,
            data={"kind": job.kind, "params": job.params, "files": {name: f["sha256"] for name, f in files.items()}},
        )
    return True


def _trail_vouches() -> None:
    """No pack from a trail under alarm, or without the witnesses' quorum the policy requires."""
    from audit.trail import trail_facts

    inconsistent, quorum_missing = trail_facts()
    if inconsistent:
        raise RuntimeError("audit_log_inconsistent: an audit alarm is open; an operator must resolve it")
    if quorum_missing:
        raise RuntimeError("witness_quorum_missing: too few witnesses have recently cosigned the audit log")


def _give_up(job_id: str, owner: str, error: BaseException, *, final: bool) -> None:
    """Record the failed attempt and release the lease (only this delivery's)."""
    values: dict[str, Any] = {
        "error": f"{type(error).__name__}: {error}"[:2000],
        "lease_owner": "",
        "lease_expires_at": None,
    }
    if final:
        values.update(status=PackStatus.FAILED, finished_at=database_now())
    else:
        values.update(status=PackStatus.QUEUED)
    PackJob.objects.filter(pk=job_id, lease_owner=owner).update(**values)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=3, ignore_result=True)
def pack_build(self: Any, job_id: str) -> str:
    """Build one pack, once. Safe to deliver twice: a done job is left alone, a job another
    delivery holds is left to it, an interrupted one is rebuilt from the start. Database errors
    are retried on a fresh connection; a delivery that cannot even record its failure leaves a
    lease that runs out, and ``packs_resume`` hands the job over."""
    owner = _lease_owner()
    try:
        job = _with_fresh_connection(lambda: _claim(job_id, owner), what="claiming the job")
    except LeaseHeld as held:
        if self.request.is_eager:
            return "skipped"
        # Look again when the holder's lease would run out: if it is still building it will
        # have renewed it (or finished), and if it died this delivery takes over.
        raise self.retry(countdown=int(held.seconds) + 1, max_retries=None) from held
    if job is None:
        return "skipped"
    try:
        files = _with_fresh_connection(lambda: _build(job, owner), what="building")
        finished = _with_fresh_connection(lambda: _finish(job_id, owner, files), what="recording the pack")
    except LeaseLost:
        _discard(job_id, owner)
        return "skipped"
    except Exception as error:
        _discard(job_id, owner)
        # The job's own count decides (a delivery that waited on another's lease used Celery's).
        final = job.attempts >= settings.PACK_MAX_ATTEMPTS
        failure = error
        _with_fresh_connection(lambda: _give_up(job_id, owner, failure, final=final), what="recording the failure")
        if not final:
            raise self.retry(exc=error, countdown=2 ** min(job.attempts, 6), max_retries=None) from error
        raise
    if finished:
        return "built"
    _discard(job_id, owner)  # another delivery finished first; its files are the pack
    return "skipped"


def _build(job: PackJob, owner: str) -> dict[str, Any]:
    """Render, sign and store the pack's files; returns their names, keys and hashes."""
    sequence_pending()  # the pack's proofs cover everything committed before the build
    _trail_vouches()
    now = database_now()
    if job.kind == PackKind.CHANGELOG:
        _progress(job.pk, owner, 10, "collecting the change")
        changelog = Changelog.objects.select_related("service", "service__domain", "created_by").get(
            pk=job.params["changelog"]
        )
        pack, evidence_files = changelog_pack_data(changelog=changelog, now=now)
        key_pem, cert_pem, _ = pack_signing_material()
        members = changelog_members(
            pack=pack,
            evidence_files=evidence_files,
            verifier_sources=standalone_verifier_sources(),
            signing_certificate_pem=cert_pem,
        )
        manifest = changelog_manifest(pack, members)
        pack = dataclasses.replace(pack, manifest_sha256=hashlib.sha256(manifest).hexdigest())
        _progress(job.pk, owner, 40, "rendering the PDF")
        pdf = _sign(render_changelog_pdf(pack), reason=f"Evidence pack of changelog {changelog.pk}")
        _progress(job.pk, owner, 70, "building the ZIP")
        archive = build_changelog_zip(
            pack=pack,
            signed_pdf=pdf,
            evidence_files=evidence_files,
            verifier_sources=standalone_verifier_sources(),
            signing_certificate_pem=cert_pem,
            manifest_signature=sign_manifest(
                manifest,
                key_pem=key_pem,
                cert_pem=cert_pem,
                key_passphrase=settings.PACK_SIGNING_KEY_PASSPHRASE.encode() or None,
            ),
        )
        _progress(job.pk, owner, 90, "storing")
        return {
            "pack.pdf": _store(job, owner, "pack.pdf", pdf, "application/pdf"),
            "pack.zip": _store(job, owner, "pack.zip", archive, "application/zip"),
        }
    params = job.params
    population = population_pack_data(
        start=datetime.fromisoformat(params["start"]),
        end=datetime.fromisoformat(params["end"]),
        domain=params["domain"],
        sample_size=params["sample_size"],
        seed=params["seed"],
        now=now,
        progress=lambda done, total: _progress(job.pk, owner, 5 + 60 * done // max(total, 1), "listing changes"),
    )
    # The CSV first: the signed PDF prints its SHA-256, which binds the two.
    _progress(job.pk, owner, 5, "writing the CSV")
    table = io.StringIO(newline="")
    write_population_csv(population, table)
    csv_bytes = table.getvalue().encode("utf-8")
    population = dataclasses.replace(population, csv_sha256=hashlib.sha256(csv_bytes).hexdigest())
    _progress(job.pk, owner, 10, "rendering the PDF")
    rendered = io.BytesIO()
    render_population_pdf(population, rendered)
    _progress(job.pk, owner, 70, "signing")
    pdf = _sign(rendered.getvalue(), reason=f"Population pack {params['start']} to {params['end']}")
    document = population_json(population, audit_items=_audit_items)
    _progress(job.pk, owner, 90, "storing")
    return {
        "population.pdf": _store(job, owner, "population.pdf", pdf, "application/pdf"),
        "population.csv": _store(job, owner, "population.csv", csv_bytes, "text/csv"),
        "population.json": _store(job, owner, "population.json", document, "application/json"),
    }


def pack_request_for(
    *,
    acting_user: ActingUser,
    kind: str,
    changelog: Any = None,
    start: datetime | None = None,
    end: datetime | None = None,
    domain: str = "",
    sample_size: int = 25,
    seed: int | None = None,
) -> tuple[PackJob, bool]:
    """Validate what is asked for and turn it into a job's params."""
    if kind == PackKind.CHANGELOG:
        found = changelog_list_visible(user=acting_user).filter(pk=changelog).first() if changelog else None
        if found is None:
            raise NotFound(PackError.PACK_NOT_FOUND, "No such changelog.")
        return pack_request(acting_user=acting_user, kind=kind, params={"changelog": str(found.pk)})
    if start is None or end is None or end <= start:
        raise InvalidInput(PackError.INVALID_PERIOD, "A population pack needs a start before its end.")
    _period_bounded(start, end)
    if domain and not Domain.objects.filter(slug=domain).exists():
        raise InvalidInput(PackError.INVALID_PERIOD, f"No domain {domain!r}.")
    params = {
        "start": _time(start),
        "end": _time(end),
        "domain": domain,
        "sample_size": sample_size,
        # A seed is drawn when none is given, and printed in the pack.
        "seed": seed if seed is not None else secrets.randbelow(2**31),
    }
    if seed is None:
        reuse = PackJob.objects.filter(
            kind=kind,
            params__start=params["start"],
            params__end=params["end"],
            params__domain=domain,
            params__sample_size=sample_size,
            status__in=[PackStatus.QUEUED, PackStatus.RUNNING],
        ).first()
        if reuse is not None:
            return reuse, False
    return pack_request(acting_user=acting_user, kind=kind, params=params)


def _period_bounded(start: datetime, end: datetime) -> None:
    """A period is no longer than PACK_MAX_PERIOD_DAYS and starts no earlier than the day of
    the first audit event: before it there is nothing to report, and a period from year 1 was
    accepted and then failed its build again and again."""
    longest = timedelta(days=settings.PACK_MAX_PERIOD_DAYS)
    if end - start > longest:
        raise InvalidInput(
            PackError.PERIOD_TOO_LONG,
            f"A population pack covers at most {settings.PACK_MAX_PERIOD_DAYS} days (PACK_MAX_PERIOD_DAYS); "
            "ask for several periods.",
        )
    first = AuditEvent.objects.order_by("id").values_list("created_at", flat=True).first()
    earliest = (first or timezone.now()).replace(hour=0, minute=0, second=0, microsecond=0)
    if start < earliest:
        raise InvalidInput(
            PackError.PERIOD_BEFORE_RECORDS,
            f"The audit trail starts on {earliest:%Y-%m-%d}; a population pack cannot start before "
            f"{earliest:%Y-%m-%dT%H:%M:%SZ}.",
        )


def pack_job_list() -> Any:
    return PackJob.objects.select_related("requested_by").order_by("-created_at")


def pack_job_get(*, job_id: Any) -> PackJob:
    job: PackJob | None = PackJob.objects.select_related("requested_by").filter(pk=job_id).first()
    if job is None:
        raise NotFound(PackError.PACK_NOT_FOUND, "No such pack.")
    return job


def pack_file(*, job_id: Any, name: str) -> tuple[bytes, dict[str, Any]]:
    job = pack_job_get(job_id=job_id)
    if job.status != PackStatus.DONE:
        raise Conflict(PackError.PACK_NOT_READY, f"The pack is {job.status}; its files appear when it is done.")
    meta = job.files.get(name)
    if meta is None:
        raise NotFound(PackError.PACK_NOT_FOUND, f"The pack has no file {name!r}.")
    data = blob_read(meta["storage_key"], sha256=meta["sha256"])
    return data, {**meta, "sha256_b64": base64.b64encode(bytes.fromhex(meta["sha256"])).decode()}


@shared_task(ignore_result=True)
def packs_resume() -> int:
    """Run by beat every minute: hands over again the pack jobs nobody is building (the message
    was lost, a worker was killed, a database blip left the job running): within
    PACK_LEASE_SECONDS plus a minute, not half an hour. A delivery that finds another holding a
    live lease walks away, so handing over too often is harmless."""
    stale = list(_stale_jobs(database_now())[:100])
    return _dispatch(stale)
