"""The gate: gather the facts for one question, let the pure policy decide, record the answer.

"May I deploy artifact X of service S to production now?" The facts are read at one moment,
``releasegate.policy.evaluate`` decides, and the decision is stored and audited with who asked,
in the same transaction. A denial is an answer, not an error.

The facts are gathered in one of two ways, which must agree (on PostgreSQL the tests read
every gate check they make both ways: tests/releasegate/conftest.py and test_gate_sql.py):

- on PostgreSQL, with ``releasegate.gate_sql``: one prepared statement reads every fact, one
  writes the decision and its audit event. The gate is on every pipeline's way to production,
  and its cost is in the reading, not in the deciding (bench/gate.py, docs/benchmarks.md).
- elsewhere (SQLite: development and the embedded default), with the ORM through the apps' own
  selectors: ``gate_facts``. It is also the reference the SQL is checked against, as it reads
  what submission and the approver pages read (``readiness_of``, ``approval_state_of``).
"""

import dataclasses
import functools
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Case, IntegerField, Q, Value, When

import audit
from approvals.models import RetrospectiveStatus
from approvals.rules import ApprovalFact, ApprovalState, Authority, approval_context, approval_state
from approvals.selectors import approval_state_of
from audit.clock import business_now
from audit.services import event_inserted, event_row
from changelogs import selectors as changelog_selectors
from changelogs.authors import RevisionAuthors, revision_authors
from changelogs.models import Changelog, ChangelogRevision, Domain, RevisionStatus, Service
from changelogs.policy import (
    READINESS_SUMMARY_KEYS,
    EvidenceFact,
    Finding,
    PolicyRules,
    ReadinessFacts,
    readiness_findings,
)
from changelogs.selectors import PolicyInUse, readiness_of
from core.actors import ActingUser
from incidents.rules import BlockingIncident, blocking_incidents
from incidents.selectors import gate_min_severity, unresolved_incidents_of_domain
from releasegate import gate_sql
from releasegate.audit_actions import GateAction
from releasegate.models import FreezeOverride, FreezeWindow, GateDecision, GateOutcome
from releasegate.policy import FreezeFact, GateFacts, PlannedWindowFact, evaluate

M = TypeVar("M", bound=models.Model)


@dataclass(frozen=True)
class Snapshot:
    facts: GateFacts
    revision: ChangelogRevision | None
    policy: str
    # Whether an audit alarm is open, when the read already asked (gate_sql); None: ask.
    audit_alarm_open: bool | None = None


def _facts(
    *,
    revision: ChangelogRevision,
    changelog: Changelog,
    findings: list[Finding],
    state: ApprovalState | None,
    overdue: int,
    freezes: tuple[FreezeFact, ...],
    rules: PolicyRules,
    authors: RevisionAuthors,
    now: datetime,
    incidents: tuple[BlockingIncident, ...] = (),
) -> GateFacts:
    """The facts of a found revision, however they were read."""
    window = revision.content["planned_window"]
    return GateFacts(
        open_incidents=incidents,
        commit_authors_unverified=rules.requires_verified_authors(revision.content["risk_tier"])
        and not authors.verified,
        changelog_found=True,
        changelog_status=changelog.status,
        changelog_kind=changelog.kind,
        revision_status=revision.status,
        findings=tuple((f.code.value, f.message) for f in findings),
        approval_status=state.status.value if state else "",
        one_independent_approval=bool(state and state.one_independent_approval),
        approvals_missing=state.missing if state else (),
        not_counted=tuple(state.not_counted.values()) if state else (),
        overdue_retrospectives=overdue,
        active_freezes=freezes,
        planned_window=PlannedWindowFact(
            start=datetime.fromisoformat(window["start"]),
            end=datetime.fromisoformat(window["end"]),
            grace_minutes=rules.planned_window_grace_minutes,
            checked_at=now,
        ),
    )


def _incidents(
    *, unresolved: list[tuple[str, str]], min_severity: str | None, changelog: Changelog, revision: ChangelogRevision
) -> tuple[BlockingIncident, ...]:
    """The domain's unresolved incidents that stop this change unless it answers them (a
    hotfix naming the incident in ``hotfix.incident_reference``)."""
    hotfix = revision.content.get("hotfix")
    reference = hotfix.get("incident_reference", "") if isinstance(hotfix, dict) else ""
    return blocking_incidents(
        incidents=unresolved, min_severity=min_severity, changelog_kind=changelog.kind, incident_reference=reference
    )


# --- The facts through the ORM: any database, and the reference ----------------------------------


def revision_for_digest(service: Service, digest: str, changelog_id: Any) -> ChangelogRevision | None:
    """The revision of the service carrying the digest: a submitted one if there is one, else
    the newest (so that a draft or superseded one can be named in the denial). Deployment
    reports are attached to its changelog by the same rule (releasegate/deployments.py)."""
    revisions = ChangelogRevision.objects.filter(changelog__service=service, artifact_digest=digest)
    if changelog_id:
        revisions = revisions.filter(changelog_id=changelog_id)
    revision: ChangelogRevision | None = (
        revisions.select_related("changelog", "changelog__service", "changelog__service__domain")
        .annotate(
            submitted_first=Case(
                When(status=RevisionStatus.SUBMITTED, then=Value(0)), default=Value(1), output_field=IntegerField()
            )
        )
        .order_by("submitted_first", "-created_at", "id")
        .first()
    )
    return revision


def _active_freezes(service: Service, changelog_id: Any, now: datetime) -> list[FreezeFact]:
    freezes = (
        FreezeWindow.objects.filter(
            Q(domain__isnull=True) | Q(domain_id=service.domain_id), starts_at__lte=now, ends_at__gt=now
        )
        .select_related("domain")
        .order_by("-starts_at", "id")
    )
    overridden = (
        set(
            FreezeOverride.objects.filter(freeze__in=freezes, changelog_id=changelog_id).values_list(
                "freeze_id", flat=True
            )
        )
        if changelog_id
        else set()
    )
    return [
        FreezeFact(
            id=freeze.pk,
            scope=freeze.domain.slug if freeze.domain else "global",
            reason=freeze.reason,
            overridden=freeze.pk in overridden,
        )
        for freeze in freezes
    ]


def gate_facts(*, service: Service, digest: str, changelog_id: Any = None, now: datetime) -> Snapshot:
    from approvals.models import Retrospective

    overdue = Retrospective.objects.filter(service=service, status=RetrospectiveStatus.OVERDUE).count()
    revision = revision_for_digest(service, digest, changelog_id)
    if revision is None:
        facts = GateFacts(
            changelog_found=False,
            overdue_retrospectives=overdue,
            active_freezes=tuple(_active_freezes(service, None, now)),
        )
        return Snapshot(facts=facts, revision=None, policy="")
    changelog = revision.changelog
    readiness = readiness_of(changelog=changelog, revision=revision)
    submitted = revision.status == RevisionStatus.SUBMITTED
    state = approval_state_of(changelog=changelog, now=now, revision=revision) if submitted else None
    facts = _facts(
        revision=revision,
        changelog=changelog,
        findings=readiness.findings,
        state=state,
        overdue=overdue,
        freezes=tuple(_active_freezes(service, changelog.pk, now)),
        rules=readiness.policy.rules,
        authors=changelog_selectors.commit_authors_of(revision=revision),
        now=now,
        incidents=_incidents(
            unresolved=unresolved_incidents_of_domain(domain_id=service.domain_id),
            min_severity=gate_min_severity(domain_id=service.domain_id),
            changelog=changelog,
            revision=revision,
        ),
    )
    return Snapshot(facts=facts, revision=revision, policy=readiness.policy.label)


# --- The facts from PostgreSQL's one row -----------------------------------------------------------


def _loaded(model: type[M], **values: Any) -> M:
    """A model instance as the ORM would have read it; the fields not given are deferred (read
    on first access), so that nothing on it is silently missing."""
    names = [field.attname for field in model._meta.concrete_fields if field.attname in values]
    return model.from_db(connection.alias, names, [values[name] for name in names])


@functools.lru_cache(maxsize=64)
def _rules(text: str) -> PolicyRules:
    """Parsed once per process for each policy text seen: policy versions are never edited (a
    change is a new version), and the cache is keyed on the text itself anyway."""
    return PolicyRules.from_json(json.loads(text))


def _policy(row: gate_sql.GateRow, service: Service) -> PolicyInUse:
    """What ``changelogs.selectors.policy_for`` says, from the row."""
    if row.policy is None:
        return PolicyInUse(rules=PolicyRules(), scope="default", version=0, policy_id=None)
    policy = row.policy
    scope = f"service:{service.slug}" if policy["of_service"] else f"domain:{row.service['domain']['slug']}"
    return PolicyInUse(rules=_rules(policy["rules"]), scope=scope, version=policy["version"], policy_id=policy["id"])


def _read(
    *, acting_user: ActingUser, service_slug: str, digest: str, changelog_id: Any, now: datetime
) -> gate_sql.GateRow | None:
    return gate_sql.read(
        user_id=acting_user.pk,
        service_slug=service_slug,
        digest=digest,
        changelog_id=changelog_id,
        now=now,
        summary_keys=READINESS_SUMMARY_KEYS,
        authorities=tuple(authority.value for authority in Authority),
    )


def _may_manage(user: Any, row: gate_sql.GateRow) -> bool:
    """What ``changelogs.selectors.service_list_managed`` (django-guardian's
    ``get_objects_for_user`` with global permissions accepted) says of this one service: a
    superuser may; a global permission counts for an active user (Django's ModelBackend); an
    object permission on the service counts."""
    return bool(user.is_superuser or (user.is_active and row.manage_globally) or row.manage_service)


def _service_of(row: gate_sql.GateRow) -> Service:
    service = row.service
    domain = _loaded(Domain, **service["domain"])
    found = _loaded(Service, **{key: value for key, value in service.items() if key != "domain"})
    found.domain = domain
    return found


def snapshot_of(row: gate_sql.GateRow, *, service: Service, now: datetime) -> Snapshot:
    """The facts ``gate_facts`` would have read, from ``gate_sql.read``'s row."""
    freezes = tuple(FreezeFact(**freeze) for freeze in row.freezes)
    found = row.revision
    if found is None:
        facts = GateFacts(
            changelog_found=False, overdue_retrospectives=row.overdue_retrospectives, active_freezes=freezes
        )
        return Snapshot(facts=facts, revision=None, policy="", audit_alarm_open=row.audit_alarm_open)
    changelog = _loaded(
        Changelog,
        id=found["changelog_id"],
        service_id=service.pk,
        kind=found["changelog_kind"],
        status=found["changelog_status"],
        created_by_id=found["changelog_created_by_id"],
    )
    changelog.service = service
    revision = _loaded(
        ChangelogRevision,
        **{key: found[key] for key in ("id", "number", "status", "content", "content_hash", "artifact_digest")},
        changelog_id=found["changelog_id"],
    )
    revision.changelog = changelog
    policy = _policy(row, service)
    readiness = ReadinessFacts(
        changelog_kind=changelog.kind,
        domain_critical_journeys=row.critical_journeys,
        evidence=[
            EvidenceFact(**{key: value for key, value in item.items() if key != "uploaded_by_id"})
            for item in row.evidence
        ],
        artifact_digest=revision.artifact_digest,
        data_changes=revision.content.get("data_changes", ()),
        bundles=revision.content.get("bundles", ()),
        bundled_now={item["id"]: (item["status"], item["content_hash"] or "") for item in row.bundled},
    )
    read = row.commit_authors or {}
    authors = revision_authors(
        content=revision.content,
        status=read.get("status", ""),
        source=read.get("source", ""),
        read=read.get("authors", ()),
    )
    state = None
    if revision.status == RevisionStatus.SUBMITTED:
        context = approval_context(
            revision_number=revision.number,
            content_hash=revision.content_hash,
            content=revision.content,
            requester_ids=row.requester_ids,
            evidence_uploader_ids=frozenset(item["uploaded_by_id"] for item in row.evidence),
            required_by_tier=policy.rules.required_approvals,
            now=now,
            verified_authors=authors.verified_identities,
            signed_tiers=policy.rules.signed_approvals,
        )
        state = approval_state(context, [ApprovalFact(**approval) for approval in row.approvals])
    facts = _facts(
        revision=revision,
        changelog=changelog,
        findings=readiness_findings(policy.rules, readiness),
        state=state,
        overdue=row.overdue_retrospectives,
        freezes=freezes,
        rules=policy.rules,
        authors=authors,
        now=now,
        incidents=_incidents(
            unresolved=row.open_incidents,
            min_severity=row.incident_min_severity,
            changelog=changelog,
            revision=revision,
        ),
    )
    return Snapshot(facts=facts, revision=revision, policy=policy.label, audit_alarm_open=row.audit_alarm_open)


# --- Deciding and recording ------------------------------------------------------------------------


def _on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _with_trail(facts: GateFacts, *, alarm_open: bool | None) -> GateFacts:
    """The facts with the audit trail's state (audit/alarms.py, audit/witnessing.py)."""
    from audit.trail import trail_facts

    inconsistent, quorum_missing = trail_facts(alarm_open=alarm_open)
    if inconsistent or quorum_missing:
        return dataclasses.replace(facts, audit_log_inconsistent=inconsistent, witness_quorum_missing=quorum_missing)
    return facts


def _decide_and_record(
    *,
    acting_user: ActingUser,
    service: Service,
    environment: str,
    digest: str,
    snapshot: Snapshot,
    token_prefix: str,
    now: datetime,
    started: float,
) -> GateDecision:
    decision = evaluate(_with_trail(snapshot.facts, alarm_open=snapshot.audit_alarm_open))
    revision = snapshot.revision
    record = GateDecision(
        service=service,
        environment=environment,
        artifact_digest=digest,
        changelog=revision.changelog if revision else None,
        revision=revision,
        outcome=GateOutcome.ALLOW if decision.allow else GateOutcome.DENY,
        reasons=[reason.to_dict() for reason in decision.reasons],
        policy=snapshot.policy,
        requested_by=acting_user,
        token_prefix=token_prefix,
        evaluated_at=now,
        valid_until=now + timedelta(minutes=settings.GATE_DECISION_VALIDITY_MINUTES),
        duration_ms=(time.perf_counter() - started) * 1000,
    )
    action = GateAction.GATE_ALLOWED if decision.allow else GateAction.GATE_DENIED
    data = {
        "service": service.slug,
        "environment": environment,
        "artifact_digest": digest,
        "changelog": str(revision.changelog_id) if revision else None,
        "revision": revision.number if revision else None,
        "reasons": [reason.code for reason in decision.reasons],
        "policy": snapshot.policy,
        "token": token_prefix,
    }
    if not _on_postgresql():
        record.save(force_insert=True)
        audit.record(actor=acting_user, action=action, target=record, data=data)
        return record
    event = event_row(actor=acting_user, action=action, target=record, data=data)
    gate_sql.write(
        decision={
            "id": record.id,
            "service_id": record.service_id,
            "environment": record.environment,
            "artifact_digest": record.artifact_digest,
            "changelog_id": record.changelog_id,
            "revision_id": record.revision_id,
            "outcome": record.outcome,
            "reasons": json.dumps(record.reasons),
            "policy": record.policy,
            "requested_by_id": record.requested_by_id,
            "token_prefix": record.token_prefix,
            "evaluated_at": record.evaluated_at,
            "valid_until": record.valid_until,
            "duration_ms": record.duration_ms,
        },
        event=dataclasses.asdict(event),
    )
    record._state.adding = False
    record._state.db = connection.alias
    event_inserted()
    return record


# The decision and its audit event are written by one statement (or, on SQLite, right after
# each other) and nothing here can fail half-way in a way a caller could recover from: a
# failure fails the caller's transaction (the request) as a whole, so no savepoint is needed
# (it would cost two more round trips per check).


@transaction.atomic(savepoint=False)
def gate_check(
    *,
    acting_user: ActingUser,
    service: Service,
    environment: str,
    digest: str,
    changelog_id: Any = None,
    token_prefix: str = "",
    now: datetime | None = None,
) -> GateDecision:
    """Decide for a service already known to be the caller's to ask about (the GitHub
    deployment protection rule resolves it from the repository)."""
    started = time.perf_counter()
    now = now or business_now()
    if _on_postgresql():
        row = _read(
            acting_user=acting_user, service_slug=service.slug, digest=digest, changelog_id=changelog_id, now=now
        )
        if row is None:
            raise Service.DoesNotExist(f"service {service.slug!r} no longer exists")
        snapshot = snapshot_of(row, service=service, now=now)
    else:
        snapshot = gate_facts(service=service, digest=digest, changelog_id=changelog_id, now=now)
    return _decide_and_record(
        acting_user=acting_user,
        service=service,
        environment=environment,
        digest=digest,
        snapshot=snapshot,
        token_prefix=token_prefix,
        now=now,
        started=started,
    )


@transaction.atomic(savepoint=False)
def gate_check_as_caller(
    *,
    acting_user: ActingUser,
    service_slug: str,
    environment: str,
    digest: str,
    changelog_id: Any = None,
    token_prefix: str = "",
    now: datetime | None = None,
) -> GateDecision | None:
    """Decide for a service named by the caller, who must be allowed to act on it
    (``changelogs.selectors.service_list_managed``); None, and nothing recorded, when there is
    no such service or the caller may not act on it. On PostgreSQL that check is part of the
    one read."""
    started = time.perf_counter()
    now = now or business_now()
    if _on_postgresql():
        row = _read(
            acting_user=acting_user, service_slug=service_slug, digest=digest, changelog_id=changelog_id, now=now
        )
        if row is None or not _may_manage(acting_user, row):
            return None
        service = _service_of(row)
        snapshot = snapshot_of(row, service=service, now=now)
    else:
        managed = changelog_selectors.service_list_managed(user=acting_user)
        found = managed.filter(slug=service_slug).select_related("domain").first()
        if found is None:
            return None
        service = found
        snapshot = gate_facts(service=service, digest=digest, changelog_id=changelog_id, now=now)
    return _decide_and_record(
        acting_user=acting_user,
        service=service,
        environment=environment,
        digest=digest,
        snapshot=snapshot,
        token_prefix=token_prefix,
        now=now,
        started=started,
    )
