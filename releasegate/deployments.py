"""Deployments as pipelines report them, and the catch for unauthorised changes.

A report is covered when an allow decision of the gate for the same service, environment and
digest was valid when the deployment was first reported (the server's clock: a pipeline cannot
claim an earlier time). Anything else is an unauthorised change: flagged, audited and notified
at once. Reports are idempotent on a key the client chooses.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from django.db import transaction
from django.utils import timezone

import audit
from approvals.notifications import notification_enqueue
from approvals.selectors import authority_holders
from audit.canonical import canonical_json, sha256_hex
from changelogs.models import ChangelogStatus, Service
from changelogs.services import changelog_status_change
from releasegate.audit_actions import GateAction
from releasegate.errors import Conflict
from releasegate.models import Deployment, DeploymentStatus, GateDecision, GateOutcome


class DeploymentError(StrEnum):
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"


def _covering_decision(*, service: Service, environment: str, digest: str, at: datetime) -> GateDecision | None:
    decision: GateDecision | None = (
        GateDecision.objects.filter(
            service=service,
            environment=environment,
            artifact_digest=digest,
            outcome=GateOutcome.ALLOW,
            evaluated_at__lte=at,
            valid_until__gte=at,
        )
        .select_related("changelog")
        .order_by("-evaluated_at")
        .first()
    )
    return decision


def _earlier_report(*, service: Service, environment: str, digest: str, run_url: str) -> Deployment | None:
    """The first report of the same pipeline run (its 'started'), whose coverage later
    reports of that run inherit."""
    if not run_url:
        return None
    earlier: Deployment | None = (
        Deployment.objects.filter(
            service=service, environment=environment, artifact_digest=digest, pipeline_run_url=run_url
        )
        .select_related("decision", "decision__changelog")
        .order_by("reported_at")
        .first()
    )
    return earlier


@transaction.atomic
def deployment_report(
    *,
    acting_user: Any,
    idempotency_key: str,
    service: Service,
    environment: str,
    digest: str,
    status: str,
    pipeline_run_url: str = "",
    started_at: datetime,
    finished_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[Deployment, bool]:
    """Record a report; returns it and whether it is new. The same key with the same report
    changes nothing; the same key with another report is a conflict."""
    now = now or timezone.now()
    fingerprint = sha256_hex(
        canonical_json(
            {
                "service": service.slug,
                "environment": environment,
                "artifact_digest": digest,
                "status": status,
                "pipeline_run_url": pipeline_run_url,
                "started_at": started_at.isoformat(),
                "finished_at": finished_at.isoformat() if finished_at else None,
            }
        )
    )
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
    earlier = _earlier_report(service=service, environment=environment, digest=digest, run_url=pipeline_run_url)
    decision = (
        earlier.decision
        if earlier
        else _covering_decision(service=service, environment=environment, digest=digest, at=now)
    )
    changelog = decision.changelog if decision else None
    deployment = Deployment.objects.create(
        idempotency_key=idempotency_key,
        reported_by=acting_user,
        service=service,
        environment=environment,
        artifact_digest=digest,
        status=status,
        pipeline_run_url=pipeline_run_url,
        started_at=started_at,
        finished_at=finished_at,
        decision=decision,
        changelog=changelog,
        unauthorised=decision is None,
        reported_at=now,
        request_fingerprint=fingerprint,
    )
    if changelog is not None and status in (DeploymentStatus.SUCCEEDED, DeploymentStatus.ROLLED_BACK):
        changelog_status_change(
            acting_user=acting_user,
            changelog=changelog,
            status=ChangelogStatus.DEPLOYED if status == DeploymentStatus.SUCCEEDED else ChangelogStatus.ROLLED_BACK,
            cause=GateAction.DEPLOYMENT_REPORTED,
            now=now,
        )
    data = {
        "deployment": str(deployment.id),
        "service": service.slug,
        "environment": environment,
        "artifact_digest": digest,
        "status": status,
        "pipeline_run_url": pipeline_run_url,
        "decision": str(decision.id) if decision else None,
        "changelog": str(changelog.id) if changelog else None,
        "unauthorised": deployment.unauthorised,
    }
    audit.record(actor=acting_user, action=GateAction.DEPLOYMENT_REPORTED, target=deployment, data=data)
    if deployment.unauthorised:
        _flag_unauthorised(acting_user, deployment, data, now)
    return deployment, True


def _flag_unauthorised(acting_user: Any, deployment: Deployment, data: dict[str, Any], now: datetime) -> None:
    audit.record(actor=acting_user, action=GateAction.DEPLOYMENT_UNAUTHORISED, target=deployment, data=data)
    people = authority_holders(domain=deployment.service.domain)
    notification_enqueue(
        event="deployment.unauthorised",
        subject=f"[Release Gate] UNAUTHORISED deployment of {deployment.service.slug} to {deployment.environment}",
        payload=data,
        emails=sorted(person.email for person in people if person.email),
        now=now,
    )
