"""Deployments as pipelines report them, and the catch for unauthorised changes.

A deployment is what one reporter (a pipeline's service account) said it started: the service,
environment and digest, and the time it started (``started_at``). Its reports (``started``,
then ``succeeded`` or ``failed``, then perhaps ``rolled_back``) carry the same four values and
the same start, which is how the later ones are recognised. The pipeline run URL is kept as
information only: a label anyone can repeat is never a key to coverage (THREATS.md, "bind,
don't trust").

The first report of a deployment is **covered** when all of these hold (docs/gate.md):

- an allow decision of the gate exists for the same service, environment and digest,
- that was valid when the deployment started (evaluated at most the clock skew after
  ``started_at``, valid until at least ``started_at``),
- whose changelog is still approved now, on the revision the decision judged (not rejected,
  not edited since, not deployed or rolled back by another deployment),
- and the report arrives within ``DEPLOYMENT_REPORT_WINDOW_MINUTES`` of the start: a
  pipeline cannot backdate a start into an old decision's window by more than that.

A later report of a covered deployment is covered when its status follows the deployment's
last report (started → succeeded/failed/rolled_back, succeeded/failed → rolled_back) and it
arrives within the same window (a rollback at any time). Anything else is an unauthorised
change: flagged, audited and notified at once. Every report is attached to the changelog
whose digest it carries, covered or not, so that the change's evidence pack and the
population list it. Only a covered report moves the changelog's status. Reports are
idempotent on a key the client chooses.
"""

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NoReturn

from django.conf import settings
from django.db import transaction

import audit
from approvals.models import Approval, Decision
from approvals.notifications import notification_enqueue
from approvals.selectors import authority_emails
from audit.clock import business_now
from changelogs.authors import identities
from changelogs.lifecycle import may_change
from changelogs.models import Changelog, ChangelogStatus, Service
from changelogs.services import changelog_status_change
from core.actors import ActingUser
from core.errors import Conflict, InvalidInput, field_error
from releasegate.audit_actions import GateAction
from releasegate.gate import revision_for_digest
from releasegate.models import Deployment, DeploymentStatus, GateDecision, GateOutcome, NotCovered
from tlog.canonical import canonical_json, sha256_hex


class DeploymentError(StrEnum):
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    STARTS_IN_FUTURE = "deployment_starts_in_future"
    FINISHES_IN_FUTURE = "deployment_finishes_in_future"
    FINISHES_BEFORE_START = "deployment_finishes_before_start"


# Which status may follow which within one deployment.
FOLLOWS: dict[str, frozenset[str]] = {
    DeploymentStatus.STARTED: frozenset(
        {DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK}
    ),
    DeploymentStatus.SUCCEEDED: frozenset({DeploymentStatus.ROLLED_BACK}),
    DeploymentStatus.FAILED: frozenset({DeploymentStatus.ROLLED_BACK}),
    DeploymentStatus.ROLLED_BACK: frozenset(),
}

# What a covered report makes of its changelog.
_CHANGELOG_STATUS_AFTER: dict[str, str] = {
    DeploymentStatus.SUCCEEDED: ChangelogStatus.DEPLOYED,
    DeploymentStatus.ROLLED_BACK: ChangelogStatus.ROLLED_BACK,
}


def _refuse_time(code: DeploymentError, field: str, message: str) -> NoReturn:
    raise InvalidInput(code, message, fields={field: [field_error(code, message)]})


def _refuse_impossible_times(*, started_at: datetime, finished_at: datetime | None, now: datetime) -> None:
    """A start or finish ahead of the server's clock (beyond the skew) has not happened yet,
    and a deployment cannot finish before it starts: both are refused, nothing recorded."""
    ahead = now + timedelta(seconds=settings.DEPLOYMENT_CLOCK_SKEW_SECONDS)
    clock = f"the server's clock says {now:%Y-%m-%dT%H:%M:%SZ}"
    if started_at > ahead:
        _refuse_time(DeploymentError.STARTS_IN_FUTURE, "started_at", f"started_at is in the future ({clock}).")
    if finished_at is not None and finished_at < started_at:
        _refuse_time(DeploymentError.FINISHES_BEFORE_START, "finished_at", "finished_at is before started_at.")
    if finished_at is not None and finished_at > ahead:
        _refuse_time(DeploymentError.FINISHES_IN_FUTURE, "finished_at", f"finished_at is in the future ({clock}).")


def _locked(changelog_id: Any) -> Changelog:
    locked: Changelog = Changelog.objects.select_for_update(no_key=True).get(pk=changelog_id)
    return locked


def _why_not_current(decision: GateDecision, changelog: Changelog) -> NotCovered | None:
    """Whether the decision's changelog is still approved on the revision it judged."""
    if changelog.current_revision_id != decision.revision_id:
        return NotCovered.REVISION_SUPERSEDED
    if changelog.status != ChangelogStatus.APPROVED:
        return NotCovered.CHANGELOG_NOT_APPROVED
    return None


def _first_report_coverage(
    *, service: Service, environment: str, digest: str, started_at: datetime, now: datetime
) -> tuple[GateDecision | None, NotCovered | None]:
    """The allow decision covering a deployment's first report, or why there is none. The
    changelog of the covering decision is locked until the report is recorded."""
    if now - started_at > timedelta(minutes=settings.DEPLOYMENT_REPORT_WINDOW_MINUTES):
        return None, NotCovered.REPORTED_LATE
    allowed = GateDecision.objects.filter(
        service=service, environment=environment, artifact_digest=digest, outcome=GateOutcome.ALLOW
    )
    skew = timedelta(seconds=settings.DEPLOYMENT_CLOCK_SKEW_SECONDS)
    valid_at_start = list(
        allowed.filter(evaluated_at__lte=started_at + skew, valid_until__gte=started_at)
        .exclude(changelog=None)
        .order_by("-evaluated_at", "-id")[:10]
    )
    if not valid_at_start:
        return None, (NotCovered.NOT_VALID_AT_START if allowed.exists() else NotCovered.NO_ALLOW_DECISION)
    why: NotCovered | None = None
    for decision in valid_at_start:
        changelog = _locked(decision.changelog_id)
        why_not = _why_not_current(decision, changelog)
        if why_not is None:
            decision.changelog = changelog
            return decision, None
        why = why or why_not
    return None, why


def _data_change_executor_problem(decision: GateDecision, executor: str) -> NotCovered | None:
    """Whoever executes a change's data changes is named in the report and is none of the
    people who approved its revision (PR-23): they could otherwise approve a script and run
    something else."""
    revision = decision.revision
    if revision is None or not revision.content.get("data_changes"):
        return None
    if not executor.strip():
        return NotCovered.DATA_CHANGE_EXECUTOR_UNNAMED
    approvers = Approval.objects.filter(revision=revision, decision=Decision.APPROVED).values_list(
        "approver__username", "approver__email"
    )
    named = identities(name_or_login=executor, email=executor)
    if any(identities(name_or_login=username, email=email) & named for username, email in approvers):
        return NotCovered.DATA_CHANGE_EXECUTOR_APPROVED
    return None


def _later_report_coverage(
    *, first: Deployment, last: Deployment, status: str, now: datetime
) -> tuple[GateDecision | None, NotCovered | None]:
    """A later report of a deployment inherits the first report's coverage when it follows the
    deployment's last report in order and in time."""
    if first.unauthorised or first.decision is None:
        return None, NotCovered.UNCOVERED_DEPLOYMENT
    if status not in FOLLOWS[last.status]:
        return None, NotCovered.OUT_OF_ORDER
    late = now - first.started_at > timedelta(minutes=settings.DEPLOYMENT_REPORT_WINDOW_MINUTES)
    if late and status != DeploymentStatus.ROLLED_BACK:
        return None, NotCovered.REPORTED_LATE
    return first.decision, None


def _move_changelog(*, acting_user: ActingUser, changelog: Changelog, status: str, now: datetime) -> None:
    """A covered report moves its changelog on as far as the lifecycle allows: a second
    deployment's success does not reopen a changelog another one rolled back."""
    target = _CHANGELOG_STATUS_AFTER.get(status)
    if target is None:
        return
    current = _locked(changelog.pk).status
    if current != target and may_change(current, target):
        changelog_status_change(
            acting_user=acting_user, changelog=changelog, status=target, cause=GateAction.DEPLOYMENT_REPORTED, now=now
        )


@transaction.atomic
def deployment_report(
    *,
    acting_user: ActingUser,
    idempotency_key: str,
    service: Service,
    environment: str,
    digest: str,
    status: str,
    pipeline_run_url: str = "",
    started_at: datetime,
    finished_at: datetime | None = None,
    data_change_executor: str = "",
    now: datetime | None = None,
) -> tuple[Deployment, bool]:
    """Record a report; returns it and whether it is new. The same key with the same report
    changes nothing; the same key with another report is a conflict."""
    now = now or business_now()
    _refuse_impossible_times(started_at=started_at, finished_at=finished_at, now=now)
    reported = {
        "service": service.slug,
        "environment": environment,
        "artifact_digest": digest,
        "status": status,
        "pipeline_run_url": pipeline_run_url,
        "started_at": started_at.isoformat(),
        "finished_at": finished_at.isoformat() if finished_at else None,
    }
    if data_change_executor:  # absent from reports made before it existed: their fingerprints stay
        reported["data_change_executor"] = data_change_executor
    fingerprint = sha256_hex(canonical_json(reported))
    existing = (
        Deployment.objects.select_for_update().filter(reported_by=acting_user, idempotency_key=idempotency_key).first()
    )
    if existing is not None:
        if existing.request_fingerprint != fingerprint:
            raise Conflict(
                DeploymentError.IDEMPOTENCY_KEY_REUSED,
                "This idempotency key was used for a different report; use a new key for a new report.",
            )
        return existing, False
    # The same deployment: what one reporter said it started (never the run URL). The first
    # report is locked so that two later reports of it are judged one after the other.
    reports = Deployment.objects.filter(
        reported_by=acting_user, service=service, environment=environment, artifact_digest=digest, started_at=started_at
    ).select_related("decision", "changelog")
    first = reports.select_for_update(of=("self",)).order_by("reported_at", "id").first()
    if first is None:
        decision, why = _first_report_coverage(
            service=service, environment=environment, digest=digest, started_at=started_at, now=now
        )
        refused = decision and _data_change_executor_problem(decision, data_change_executor)
        if decision is not None and refused:
            # Attached to the change the decision judged, but not covered by it.
            first_changelog: Changelog | None = decision.changelog
            decision, why = None, refused
    else:
        last = reports.order_by("-reported_at", "-id").first() or first
        decision, why = _later_report_coverage(first=first, last=last, status=status, now=now)
    if first is not None:
        changelog: Changelog | None = first.changelog
    elif decision is not None:
        changelog = decision.changelog
    elif why in {NotCovered.DATA_CHANGE_EXECUTOR_UNNAMED, NotCovered.DATA_CHANGE_EXECUTOR_APPROVED}:
        changelog = first_changelog
    else:
        carrying = revision_for_digest(service, digest, None)
        changelog = carrying.changelog if carrying else None
    deployment = Deployment.objects.create(
        idempotency_key=idempotency_key,
        reported_by=acting_user,
        service=service,
        environment=environment,
        artifact_digest=digest,
        status=status,
        pipeline_run_url=pipeline_run_url,
        data_change_executor=data_change_executor,
        started_at=started_at,
        finished_at=finished_at,
        decision=decision,
        changelog=changelog,
        unauthorised=decision is None,
        not_covered_because=why or "",
        reported_at=now,
        request_fingerprint=fingerprint,
    )
    if decision is not None and changelog is not None:
        _move_changelog(acting_user=acting_user, changelog=changelog, status=status, now=now)
    data = {
        "deployment": str(deployment.id),
        "service": service.slug,
        "environment": environment,
        "artifact_digest": digest,
        "status": status,
        "pipeline_run_url": pipeline_run_url,
        "data_change_executor": data_change_executor,
        "started_at": started_at.isoformat(),
        "decision": str(decision.id) if decision else None,
        "changelog": str(changelog.id) if changelog else None,
        "unauthorised": deployment.unauthorised,
        "not_covered_because": deployment.not_covered_because or None,
    }
    audit.record(actor=acting_user, action=GateAction.DEPLOYMENT_REPORTED, target=deployment, data=data)
    if deployment.unauthorised:
        _flag_unauthorised(acting_user, deployment, data, now)
    return deployment, True


def _flag_unauthorised(acting_user: ActingUser, deployment: Deployment, data: dict[str, Any], now: datetime) -> None:
    audit.record(actor=acting_user, action=GateAction.DEPLOYMENT_UNAUTHORISED, target=deployment, data=data)
    notification_enqueue(
        event="deployment.unauthorised",
        subject=f"[Release Gate] UNAUTHORISED deployment of {deployment.service.slug} to {deployment.environment}",
        payload=data,
        emails=authority_emails(domain=deployment.service.domain),
        now=now,
    )
