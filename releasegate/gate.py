"""The gate: gather the facts for one question, let the pure policy decide, record the answer.

"May I deploy artifact X of service S to production now?" The facts are read at one moment,
``releasegate.policy.evaluate`` decides, and the decision is stored and audited with who asked,
in the same transaction. A denial is an answer, not an error.

The facts come from one selector, ``gate_facts``, as one typed value (``Snapshot``), from one
of two backends which must agree (on PostgreSQL the tests read every gate check they make both
ways and compare the two snapshots: tests/releasegate/conftest.py and test_gate_sql.py):

- on PostgreSQL, ``facts_from_postgresql``: one prepared statement (``releasegate.gate_sql``)
  reads every fact and the business clock, one writes the decision and its audit event. The
  gate is on every pipeline's way to production, and its cost is in the reading, not in the
  deciding (bench/gate.py, docs/benchmarks.md).
- elsewhere (SQLite: development and the embedded default), ``facts_from_orm``: the apps' own
  selectors. It is also the reference the SQL is checked against, as it reads what submission
  and the approver pages read (``readiness_of``, ``approval_state_of``).

Both hand the same values to the rule modules (``releasegate.policy.facts_of_revision``,
``changelogs.policy``, ``approvals.rules``, ``incidents.rules``), which alone decide.
"""

import dataclasses
import functools
import json
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NotRequired, TypedDict, TypeVar, Unpack

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Case, IntegerField, Q, Value, When

import audit
from approvals.models import RetrospectiveStatus
from approvals.rules import ApprovalFact, approval_context, approval_state
from approvals.selectors import approval_state_of
from audit.clock import business_now
from audit.services import event_inserted, event_row
from changelogs import selectors as changelog_selectors
from changelogs.authors import revision_authors
from changelogs.models import Changelog, ChangelogRevision, Domain, RevisionStatus, Service
from changelogs.policy import (
    EvidenceFact,
    PolicyRules,
    ReadinessFacts,
    readiness_findings,
)
from changelogs.selectors import PolicyInUse, readiness_of
from core.actors import ActingUser
from incidents.selectors import gate_min_severity, unresolved_incidents_of_domain
from releasegate import gate_sql
from releasegate.audit_actions import GateAction
from releasegate.models import ApiToken, FreezeOverride, FreezeWindow, GateDecision, GateOutcome, User
from releasegate.policy import FreezeFact, GateFacts, evaluate, facts_of_revision

M = TypeVar("M", bound=models.Model)


@dataclass(frozen=True)
class Snapshot:
    """Everything the gate reads for one question, at one moment: the same typed values from
    either backend (the tests read every check on PostgreSQL both ways and compare them)."""

    service: Service
    may_act: bool  # the caller may act on the service (changelogs.selectors.service_list_managed)
    facts: GateFacts  # without the audit trail's state, which _with_trail adds
    revision: ChangelogRevision | None
    policy: str  # the label of the policy in force, or "" when no revision carries the digest
    audit_alarm_open: bool  # an audit alarm is open (audit.alarms)
    now: datetime  # the business clock's time the facts were read at (audit.clock)


def gate_facts(
    *, acting_user: ActingUser, service_slug: str, digest: str, changelog_id: Any = None, now: datetime | None = None
) -> Snapshot | None:
    """The gate's facts for a service named by its slug; None when there is no such service.
    ``now`` is the business clock's unless given; on PostgreSQL it is read by the same
    statement as the facts."""
    if connection.vendor == "postgresql":
        return facts_from_postgresql(
            acting_user=acting_user, service_slug=service_slug, digest=digest, changelog_id=changelog_id, now=now
        )
    return facts_from_orm(
        acting_user=acting_user,
        service_slug=service_slug,
        digest=digest,
        changelog_id=changelog_id,
        now=now or business_now(),
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


def _active_freezes(service: Service, changelog_id: Any, now: datetime) -> tuple[FreezeFact, ...]:
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
    return tuple(
        FreezeFact(
            id=freeze.pk,
            scope=freeze.domain.slug if freeze.domain else "global",
            reason=freeze.reason,
            overridden=freeze.pk in overridden,
        )
        for freeze in freezes
    )


def facts_from_orm(
    *, acting_user: ActingUser, service_slug: str, digest: str, changelog_id: Any, now: datetime
) -> Snapshot | None:
    """The facts through the apps' own selectors: what submission and the approver pages read
    (``readiness_of``, ``approval_state_of``)."""
    from approvals.models import Retrospective
    from audit.alarms import alarm_open_exists

    service = Service.objects.select_related("domain").filter(slug=service_slug).first()
    if service is None:
        return None
    may_act = changelog_selectors.service_list_managed(user=acting_user).filter(pk=service.pk).exists()
    overdue = Retrospective.objects.filter(service=service, status=RetrospectiveStatus.OVERDUE).count()
    alarm_open = alarm_open_exists()
    revision = revision_for_digest(service, digest, changelog_id)
    if revision is None:
        facts = GateFacts(
            changelog_found=False, overdue_retrospectives=overdue, active_freezes=_active_freezes(service, None, now)
        )
        return Snapshot(service, may_act, facts, None, "", alarm_open, now)
    changelog = revision.changelog
    readiness = readiness_of(changelog=changelog, revision=revision)
    submitted = revision.status == RevisionStatus.SUBMITTED
    state = approval_state_of(changelog=changelog, now=now, revision=revision) if submitted else None
    facts = facts_of_revision(
        content=revision.content,
        changelog_status=changelog.status,
        changelog_kind=changelog.kind,
        revision_status=revision.status,
        findings=readiness.findings,
        state=state,
        overdue=overdue,
        freezes=_active_freezes(service, changelog.pk, now),
        rules=readiness.policy.rules,
        authors=changelog_selectors.commit_authors_of(revision=revision),
        now=now,
        unresolved_incidents=unresolved_incidents_of_domain(domain_id=service.domain_id),
        incident_min_severity=gate_min_severity(domain_id=service.domain_id),
    )
    return Snapshot(service, may_act, facts, revision, readiness.policy.label, alarm_open, now)


# --- The facts from PostgreSQL's one statement -----------------------------------------------------


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


def _may_manage(user: ActingUser, row: gate_sql.GateRow) -> bool:
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


def facts_from_postgresql(
    *, acting_user: ActingUser, service_slug: str, digest: str, changelog_id: Any, now: datetime | None
) -> Snapshot | None:
    """The facts ``facts_from_orm`` reads, from ``gate_sql.read``'s one statement."""
    row = gate_sql.read(
        user_id=acting_user.pk, service_slug=service_slug, digest=digest, changelog_id=changelog_id, now=now
    )
    return None if row is None else _snapshot(row, acting_user)


def _instance(model: type[M], columns: dict[str, Any]) -> M:
    """A model instance from its row as PostgreSQL's ``row_to_json`` renders it (every column;
    times as ISO 8601 text)."""
    names, values = [], []
    for field in model._meta.concrete_fields:
        value = columns[field.column]
        if value is not None and isinstance(field, models.DateTimeField):
            value = datetime.fromisoformat(value)
        names.append(field.attname)
        values.append(value)
    return model.from_db(connection.alias, names, values)


def facts_with_token(
    *, token_prefix: str, service_slug: str, digest: str, changelog_id: Any
) -> tuple[ApiToken | None, Snapshot | None] | None:
    """On PostgreSQL, the API token with this public prefix (with its service account, as
    ``ApiTokenAuthentication`` reads it) and the facts read for its account, in one statement:
    (None, None) when no token has the prefix; None when there is no such service. The token is
    not checked here: the caller authenticates with it exactly as every endpoint does, and uses
    the facts only then (releasegate.apis.GateCheckApi.token_read_with_facts)."""
    row = gate_sql.read(service_slug=service_slug, digest=digest, changelog_id=changelog_id, token_prefix=token_prefix)
    if row is None:
        return None
    if row.token is None or row.token_account is None:
        return None, None
    token = _instance(ApiToken, row.token)
    token.service_account = _instance(User, row.token_account)
    return token, _snapshot(row, token.service_account)


def _snapshot(row: gate_sql.GateRow, acting_user: ActingUser) -> Snapshot:
    now = row.now
    service = _service_of(row)
    may_act = _may_manage(acting_user, row)
    freezes = tuple(FreezeFact(**freeze) for freeze in row.freezes)
    found = row.revision
    if found is None:
        facts = GateFacts(
            changelog_found=False, overdue_retrospectives=row.overdue_retrospectives, active_freezes=freezes
        )
        return Snapshot(service, may_act, facts, None, "", row.audit_alarm_open, now)
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
    facts = facts_of_revision(
        content=revision.content,
        changelog_status=changelog.status,
        changelog_kind=changelog.kind,
        revision_status=revision.status,
        findings=readiness_findings(policy.rules, readiness),
        state=state,
        overdue=row.overdue_retrospectives,
        freezes=freezes,
        rules=policy.rules,
        authors=authors,
        now=now,
        unresolved_incidents=row.open_incidents,
        incident_min_severity=row.incident_min_severity,
    )
    return Snapshot(service, may_act, facts, revision, policy.label, row.audit_alarm_open, now)


# --- Deciding and recording ------------------------------------------------------------------------


def _on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _with_trail(facts: GateFacts, *, alarm_open: bool) -> GateFacts:
    """The facts with the audit trail's state (audit/alarms.py, audit/witnessing.py)."""
    from audit.trail import trail_facts

    inconsistent, quorum_missing = trail_facts(alarm_open=alarm_open)
    if inconsistent or quorum_missing:
        return dataclasses.replace(facts, audit_log_inconsistent=inconsistent, witness_quorum_missing=quorum_missing)
    return facts


def _record(
    *, acting_user: ActingUser, environment: str, digest: str, snapshot: Snapshot, token_prefix: str, started: float
) -> GateDecision:
    """Decide from the facts and store the decision with its audit event."""
    decision = evaluate(_with_trail(snapshot.facts, alarm_open=snapshot.audit_alarm_open))
    service, revision, now = snapshot.service, snapshot.revision, snapshot.now
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
    event = event_row(actor=acting_user, action=action, target=record, data=data, one_statement=True)
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


# On PostgreSQL the facts are read by one statement and the decision is written with its audit
# event by one more: each is atomic by itself, and under READ COMMITTED a transaction around
# them would give them no common snapshot either (the read locks nothing). So the gate check
# needs no transaction of its own there: outside one (the API's gate check runs outside the
# request's transaction, releasegate.apis.GateCheckApi) it saves the round trips of BEGIN and
# COMMIT; the write commits as it returns, its WAL flushed as any commit's (issue 17;
# bench/gate.py). Elsewhere (the ORM: several statements) it is one transaction, which joins
# the caller's if there is one; no savepoint is needed, since nothing here can fail half-way
# in a way a caller could recover from.


def _gate_transaction() -> AbstractContextManager[Any]:
    return nullcontext() if _on_postgresql() else transaction.atomic(savepoint=False)


def gate_check_as_caller(
    *,
    acting_user: ActingUser,
    service_slug: str,
    environment: str,
    digest: str,
    changelog_id: Any = None,
    token_prefix: str = "",
    now: datetime | None = None,
    caller_may_act: bool = False,
    read: tuple[Snapshot, float] | None = None,
) -> GateDecision | None:
    """Decide for a service named by the caller, who must be allowed to act on it
    (``changelogs.selectors.service_list_managed``) unless ``caller_may_act`` says the caller
    was checked already; None, and nothing recorded, when there is no such service or the
    caller may not act on it. ``read``: the facts of this very question for this caller, read
    already (``facts_with_token``), and when the reading started (``time.perf_counter``)."""
    with _gate_transaction():
        if read is not None:
            snapshot: Snapshot | None
            snapshot, started = read
        else:
            started = time.perf_counter()
            snapshot = gate_facts(
                acting_user=acting_user, service_slug=service_slug, digest=digest, changelog_id=changelog_id, now=now
            )
        if snapshot is None or not (caller_may_act or snapshot.may_act):
            return None
        return _record(
            acting_user=acting_user,
            environment=environment,
            digest=digest,
            snapshot=snapshot,
            token_prefix=token_prefix,
            started=started,
        )


class GateQuestion(TypedDict):
    """What a caller asks the gate about a service, beyond who asks: the parameters of
    ``gate_check_as_caller`` that ``gate_check`` passes on as they are."""

    environment: str
    digest: str
    changelog_id: NotRequired[Any]
    token_prefix: NotRequired[str]
    now: NotRequired[datetime | None]


def gate_check(*, acting_user: ActingUser, service: Service, **question: Unpack[GateQuestion]) -> GateDecision:
    """Decide for a service already known to be the caller's to ask about (the GitHub
    deployment protection rule resolves it from the repository)."""
    decision = gate_check_as_caller(acting_user=acting_user, service_slug=service.slug, caller_may_act=True, **question)
    if decision is None:
        raise Service.DoesNotExist(f"service {service.slug!r} no longer exists")
    return decision
