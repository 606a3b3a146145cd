"""Gathering a pack's data: the database read into the plain data that ``packs.render`` draws
(a changelog pack for one change, a population pack for a period). Reads only; the builds
(packs.builds) render, sign and store what these return."""

import dataclasses
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings
from django.db.models import F, Q

from approvals.models import Approval, Retrospective, RetrospectiveStatus
from approvals.selectors import approval_state_of
from audit.events import format_time
from audit.models import AuditEvent, Checkpoint
from audit.selectors import event_canonical_bytes, inclusion_proofs
from audit.signing import verifier_key
from audit.witnessing import note_with_cosignatures
from changelogs.authors import revision_authors
from changelogs.models import Changelog, ChangelogRevision, CommitAuthors, RevisionStatus
from changelogs.selectors import revision_current
from changelogs.storage import blob_read
from core.errors import Conflict
from incidents.selectors import incidents_of_changelog
from packs.errors import PackError
from packs.render.data import (
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
from packs.render.sample import sample_changelog_ids
from releasegate.documents import signing_material
from releasegate.models import Deployment, GateDecision, GateOutcome
from releasegate.pdfsign import certificate_sha256
from tlog.merkle import leaf_hash

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

ItemT = TypeVar("ItemT", bound="DataclassInstance")


def time_text(value: datetime | None) -> str:
    return format_time(value) if value else ""


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


def audit_items(changelog: Changelog, checkpoint: Checkpoint) -> list[AuditItem]:
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
            time=time_text(event.created_at),
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


def _item(kind: type[ItemT], row: Any, **given: Any) -> ItemT:
    """A pack item from a database row: the ``given`` fields as passed (people by username, what
    is computed), every other field from the row's attribute of the same name: its id and its
    times (``…_at``) as text, the rest as they are."""

    def value(name: str) -> Any:
        if name == "id":
            return str(row.pk)
        found = getattr(row, name)
        return time_text(found) if name.endswith("_at") else found

    return kind(**{f.name: value(f.name) for f in dataclasses.fields(kind) if f.name not in given}, **given)


def _of_changelog(model: Any, changelog: Changelog, *related: str, order: str) -> Any:
    """The changelog's rows of ``model`` with the rows they name, in time order."""
    return model.objects.filter(changelog=changelog).select_related(*related).order_by(order)


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
            _item(
                EvidenceItem,
                item,
                uploaded_by=item.uploaded_by.username,
                summary_lines=summary_lines(item.summary),
                archive_name=archive_name,
            )
        )
    approvals = [
        _item(
            ApprovalItem,
            approval,
            approver=approval.approver.username,
            authorities=list(approval.authorities),
            revision=approval.revision.number,
            counts=bool(state and str(approval.pk) in state.counted),
            not_counted_because=state.not_counted.get(str(approval.pk)) if state else None,
            signature=_signature_of(approval, changelog),
        )
        for approval in _of_changelog(Approval, changelog, "approver", "revision", "signature", order="decided_at")
    ]
    decisions = [
        _item(DecisionItem, d, reasons=[reason["code"] for reason in d.reasons], requested_by=d.requested_by.username)
        for d in _of_changelog(GateDecision, changelog, "requested_by", order="evaluated_at")
    ]
    deployments = [
        _item(DeploymentItem, d, reported_by=d.reported_by.username)
        for d in _of_changelog(Deployment, changelog, "reported_by", order="reported_at")
    ]
    readiness = revision.readiness_at_submit or {"policy": "", "findings": []}
    pack = ChangelogPack(
        organisation=settings.ORGANISATION_NAME,
        generated_at=time_text(now),
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
        created_at=time_text(changelog.created_at),
        submitted_by=revision.submitted_by.username if revision.submitted_by else "",
        submitted_at=time_text(revision.submitted_at),
        readiness_policy=readiness["policy"],
        readiness_findings=[(f["code"], f["message"]) for f in readiness["findings"]],
        evidence=items,
        approvals=approvals,
        decisions=decisions,
        deployments=deployments,
        audit_events=audit_items(changelog, checkpoint),
        checkpoint=note_with_cosignatures(checkpoint),
        checkpoint_size=checkpoint.tree_size,
        public_key=verifier_key(),
        signing_certificate_sha256=certificate_sha256(signing_material()[1]),
        incidents=[
            (incident.reference, relation, incident.severity, incident.title)
            for relation, linked in incidents_of_changelog(changelog=changelog).items()
            for incident in linked
        ],
    )
    return pack, files


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
        submitted_at=time_text(revision.submitted_at),
        approved_at=time_text(max((a.decided_at for a in approved), default=None))
        if changelog.status != "submitted"
        else "",
        first_deployed_at=time_text(first_deployment),
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
            reported_at=time_text(row[1]),
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
                at=time_text(deployment.reported_at),
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
                at=time_text(retrospective.due_at),
                detail=(
                    f"completed {time_text(retrospective.completed_at)}, after its deadline"
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
        generated_at=time_text(now),
        period_start=time_text(start),
        period_end=time_text(end),
        domain=domain,
        changes=_LazyRows(lambda: _change_rows(start, end, domain, progress)),
        deployments=_LazyRows(lambda: _deployment_rows(start, end, domain)),
        exceptions=exceptions,
        totals=totals,
        audit_first_leaf=first_leaf if first_leaf is not None else -1,
        audit_last_leaf=last_leaf if last_leaf is not None else -1,
        checkpoint=checkpoint.signed_note,
        public_key=verifier_key(),
        signing_certificate_sha256=certificate_sha256(signing_material()[1]),
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
