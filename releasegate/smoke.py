"""Production smoke tests after a deployment (PR-19).

The pipeline reports the smoke test of the critical journeys (a JUnit, Playwright or CTRF
report, tagged with journey ids as staging tests are: docs/evidence.md) against the deployment
it just made. Every critical journey of the domain (or the policy's list) must pass. A failed
smoke test marks the deployment failed, moves the change to rolled back, writes the rollback
plan of the deployed revision into the audit trail with what failed, and notifies the domain's
signing authorities: the pipeline runs the rollback it was given, and the record says so.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

import audit
from approvals.notifications import notification_enqueue
from approvals.selectors import authority_emails
from changelogs import parsers
from changelogs.errors import ChangelogError
from changelogs.files import file_name_clean, file_name_problem
from changelogs.lifecycle import may_change
from changelogs.models import ChangelogStatus, Journey
from changelogs.selectors import policy_for, service_list_managed
from changelogs.services import changelog_status_change
from changelogs.storage import blob_put
from core.actors import ActingUser
from core.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, field_error
from releasegate.audit_actions import GateAction
from releasegate.models import Deployment, DeploymentStatus, SmokeStatus, SmokeTest

PASSING = frozenset({"passed", "flaky"})


class SmokeError(StrEnum):
    DEPLOYMENT_NOT_FOUND = "deployment_not_found"
    SMOKE_BEFORE_SUCCESS = "smoke_before_success"
    SMOKE_FORMAT_NOT_DETECTED = "smoke_format_not_detected"
    SMOKE_TOO_LARGE = "smoke_too_large"


def deployment_for_smoke(*, user: ActingUser, deployment_id: Any) -> Deployment:
    """The deployment, locked, if the caller may act on its service; else not found."""
    deployment: Deployment | None = (
        Deployment.objects.select_for_update(of=("self",))
        .select_related("service", "service__domain", "changelog", "decision__revision")
        .filter(pk=deployment_id, service__in=service_list_managed(user=user))
        .first()
    )
    if deployment is None:
        raise NotFound(SmokeError.DEPLOYMENT_NOT_FOUND, "No such deployment, or the caller may not act on it.")
    return deployment


def _critical_journeys(deployment: Deployment) -> tuple[str, ...]:
    rules = policy_for(service=deployment.service).rules
    if rules.critical_journeys is not None:
        return tuple(rules.critical_journeys)
    return tuple(
        Journey.objects.filter(domain_id=deployment.service.domain_id, critical=True)
        .order_by("journey_id")
        .values_list("journey_id", flat=True)
    )


def _parsed(data: bytes, file_name: str) -> tuple[str, dict[str, Any], str]:
    problem = file_name_problem(file_name)
    if problem:
        code = ChangelogError.INVALID_FILE_NAME
        raise InvalidInput(code, problem, fields={"file": [field_error(code, problem)]})
    if len(data) > settings.EVIDENCE_MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(
            SmokeError.SMOKE_TOO_LARGE,
            f"A smoke test report may be at most {settings.EVIDENCE_MAX_UPLOAD_BYTES} bytes.",
        )
    fmt = parsers.detect_format(data, file_name)
    if fmt is None or fmt not in parsers.formats_of_kind("sanity"):
        message = "A smoke test is a test report (JUnit XML, Playwright or CTRF JSON) tagged with journey ids."
        raise InvalidInput(
            SmokeError.SMOKE_FORMAT_NOT_DETECTED,
            message,
            fields={"file": [field_error(SmokeError.SMOKE_FORMAT_NOT_DETECTED, message)]},
        )
    try:
        summary = parsers.parse(fmt, data)
    except parsers.EvidenceParseError as error:
        message = f"{error.message} ({error.location})" if error.location else error.message
        raise InvalidInput(error.code, message, fields={"file": [field_error(error.code, message)]}) from error
    return fmt, summary.to_dict(), summary.verdict


@transaction.atomic
def smoke_report(
    *, acting_user: ActingUser, deployment: Deployment, data: bytes, file_name: str, now: datetime | None = None
) -> SmokeTest:
    """Record a smoke test against a succeeded deployment (locked by ``deployment_for_smoke``)."""
    now = now or timezone.now()
    if deployment.status != DeploymentStatus.SUCCEEDED:
        raise Conflict(
            SmokeError.SMOKE_BEFORE_SUCCESS,
            f"This report says the deployment {deployment.status}; a smoke test follows a succeeded deployment.",
        )
    fmt, summary, verdict = _parsed(data, file_name)
    outcomes = summary.get("journeys") or {}
    critical = _critical_journeys(deployment)
    journeys = {journey: outcomes.get(journey, "not run") for journey in critical}
    failed = sorted(journey for journey, outcome in journeys.items() if outcome not in PASSING)
    passed = not failed and verdict != "fail"
    sha256, key = blob_put(data)
    smoke = SmokeTest.objects.create(
        deployment=deployment,
        file_name=file_name_clean(file_name),
        format=fmt,
        sha256=sha256,
        storage_key=key,
        summary=summary,
        journeys=journeys,
        failed_journeys=failed,
        passed=passed,
        reported_by=acting_user,
        reported_at=now,
    )
    deployment.smoke_status = SmokeStatus.PASSED if passed else SmokeStatus.FAILED
    deployment.save(update_fields=["smoke_status"])
    changelog = deployment.changelog
    revision = deployment.decision.revision if deployment.decision else None
    revision = revision or (changelog.current_revision if changelog else None)
    event = {
        "deployment": str(deployment.pk),
        "smoke_test": str(smoke.pk),
        "changelog": str(changelog.pk) if changelog else None,
        "sha256": sha256,
        "format": fmt,
        "journeys": journeys,
        "failed_journeys": failed,
        "verdict": verdict,
    }
    if passed:
        audit.record(actor=acting_user, action=GateAction.DEPLOYMENT_SMOKE_PASSED, target=deployment, data=event)
        return smoke
    event["rollback_plan"] = revision.content.get("rollback_plan", "") if revision else ""
    audit.record(actor=acting_user, action=GateAction.DEPLOYMENT_SMOKE_FAILED, target=deployment, data=event)
    if changelog is not None and may_change(changelog.status, ChangelogStatus.ROLLED_BACK):
        changelog_status_change(
            acting_user=acting_user,
            changelog=changelog,
            status=ChangelogStatus.ROLLED_BACK,
            cause=GateAction.DEPLOYMENT_SMOKE_FAILED,
            now=now,
        )
    notification_enqueue(
        event="deployment.smoke_failed",
        subject=f"[Release Gate] Smoke test FAILED after deploying {deployment.service.slug}: roll back",
        payload=event,
        emails=authority_emails(domain=deployment.service.domain),
        now=now,
    )
    return smoke
