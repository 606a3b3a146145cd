"""The gate: gather the facts for one question, let the pure policy decide, record the answer.

"May I deploy artifact X of service S to production now?" The facts are read at one moment,
``releasegate.policy.evaluate`` decides, and the decision is stored and audited with who asked,
in the same transaction. A denial is an answer, not an error.
"""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, IntegerField, Q, Value, When
from django.utils import timezone

import audit
from approvals.models import RetrospectiveStatus
from approvals.selectors import approval_state_of
from changelogs.models import ChangelogRevision, RevisionStatus, Service
from changelogs.selectors import readiness_of
from releasegate.audit_actions import GateAction
from releasegate.models import FreezeOverride, FreezeWindow, GateDecision, GateOutcome
from releasegate.policy import FreezeFact, GateFacts, evaluate


@dataclass(frozen=True)
class Snapshot:
    facts: GateFacts
    revision: ChangelogRevision | None
    policy: str


def _revision_for(service: Service, digest: str, changelog_id: Any) -> ChangelogRevision | None:
    """The revision of the service carrying the digest: a submitted one if there is one, else
    the newest (so that a draft or superseded one can be named in the denial)."""
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
        .order_by("submitted_first", "-created_at")
        .first()
    )
    return revision


def _active_freezes(service: Service, changelog_id: Any, now: datetime) -> list[FreezeFact]:
    freezes = FreezeWindow.objects.filter(
        Q(domain__isnull=True) | Q(domain_id=service.domain_id), starts_at__lte=now, ends_at__gt=now
    ).select_related("domain")
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

    overdue = Retrospective.objects.filter(changelog__service=service, status=RetrospectiveStatus.OVERDUE).count()
    revision = _revision_for(service, digest, changelog_id)
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
    facts = GateFacts(
        changelog_found=True,
        changelog_status=changelog.status,
        changelog_kind=changelog.kind,
        revision_status=revision.status,
        findings=tuple((f.code.value, f.message) for f in readiness.findings),
        approval_status=state.status.value if state else "",
        one_independent_approval=bool(state and state.one_independent_approval),
        approvals_missing=state.missing if state else (),
        not_counted=tuple(state.not_counted.values()) if state else (),
        overdue_retrospectives=overdue,
        active_freezes=tuple(_active_freezes(service, changelog.pk, now)),
    )
    return Snapshot(facts=facts, revision=revision, policy=readiness.policy.label)


@transaction.atomic
def gate_check(
    *,
    acting_user: Any,
    service: Service,
    environment: str,
    digest: str,
    changelog_id: Any = None,
    token_prefix: str = "",
    now: datetime | None = None,
) -> GateDecision:
    started = time.perf_counter()
    now = now or timezone.now()
    snapshot = gate_facts(service=service, digest=digest, changelog_id=changelog_id, now=now)
    decision = evaluate(snapshot.facts)
    revision = snapshot.revision
    record = GateDecision.objects.create(
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
    audit.record(
        actor=acting_user,
        action=GateAction.GATE_ALLOWED if decision.allow else GateAction.GATE_DENIED,
        target=record,
        data={
            "service": service.slug,
            "environment": environment,
            "artifact_digest": digest,
            "changelog": str(revision.changelog_id) if revision else None,
            "revision": revision.number if revision else None,
            "reasons": [reason.code for reason in decision.reasons],
            "policy": snapshot.policy,
            "token": token_prefix,
        },
    )
    return record
