"""Writes for approvals: the authority matrix, submitting for approval, deciding, and hotfix
retrospectives. Each runs in one transaction with its audit event."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

import audit
from approvals.audit_actions import ApprovalAction
from approvals.errors import ApprovalError
from approvals.models import Approval, Decision, Retrospective, RetrospectiveStatus
from approvals.notifications import notification_enqueue
from approvals.rules import ApprovalStatus, Authority
from approvals.selectors import approval_state_of, authorities_of, authority_holders, requester_ids
from audit.services import SYSTEM
from changelogs import services as changelog_services
from changelogs.models import Changelog, ChangelogKind, ChangelogRevision, ChangelogStatus, Domain, RevisionStatus
from changelogs.selectors import changelog_lock, policy_for, revision_current
from releasegate.errors import ApplicationError, Conflict, InvalidInput, PermissionDenied, field_error


def _authority(value: str) -> Authority:
    try:
        return Authority(value)
    except ValueError:
        raise InvalidInput(
            ApprovalError.UNKNOWN_AUTHORITY, f"Unknown authority {value!r}; use one of {', '.join(Authority)}."
        ) from None


@transaction.atomic
def authority_grant(
    *, acting_user: Any, domain: Domain, authority: str, user: Any = None, group: Group | None = None
) -> None:
    """Grant a signing authority on a domain to a person or a group (django-guardian)."""
    grantee = _grantee(user, group)
    permission = _authority(authority)
    assign_perm(f"changelogs.{permission.value}", grantee, domain)
    audit.record(
        actor=acting_user,
        action=ApprovalAction.AUTHORITY_GRANTED,
        target=domain,
        data={"authority": permission.value, **_grantee_data(user, group)},
    )


@transaction.atomic
def authority_revoke(
    *, acting_user: Any, domain: Domain, authority: str, user: Any = None, group: Group | None = None
) -> None:
    grantee = _grantee(user, group)
    permission = _authority(authority)
    remove_perm(f"changelogs.{permission.value}", grantee, domain)
    audit.record(
        actor=acting_user,
        action=ApprovalAction.AUTHORITY_REVOKED,
        target=domain,
        data={"authority": permission.value, **_grantee_data(user, group)},
    )


def _grantee(user: Any, group: Group | None) -> Any:
    if (user is None) == (group is None):
        raise InvalidInput(ApprovalError.GRANTEE_REQUIRED, "Grant to exactly one person or one group.")
    if user is not None and user.is_service_account:
        raise InvalidInput(ApprovalError.APPROVER_NOT_A_PERSON, "Pipelines cannot hold signing authority.")
    return user if user is not None else group


def _grantee_data(user: Any, group: Group | None) -> dict[str, str]:
    return {"user": user.username} if user is not None else {"group": group.name if group else ""}


@transaction.atomic
def changelog_submit_for_approval(
    *, acting_user: Any, changelog: Changelog, now: datetime | None = None
) -> ChangelogRevision:
    """Freeze and hash the draft (changelogs), then tell the domain's signing authorities."""
    now = now or timezone.now()
    revision = changelog_services.changelog_submit(acting_user=acting_user, changelog=changelog, now=now)
    requesters = requester_ids(changelog=changelog)
    approvers = [
        user for user in authority_holders(domain=changelog.service.domain) if user.pk not in requesters and user.email
    ]
    notification_enqueue(
        event="changelog.submitted",
        subject=f"[Release Gate] {changelog.service.slug} {revision.content['artifact']['version']} waits for sign-off",
        payload={
            "changelog": str(changelog.id),
            "service": changelog.service.slug,
            "domain": changelog.service.domain.slug,
            "kind": changelog.kind,
            "revision": revision.number,
            "content_hash": revision.content_hash,
            "artifact_digest": revision.artifact_digest,
            "risk_tier": revision.content["risk_tier"],
            "ready": bool(revision.readiness_at_submit and revision.readiness_at_submit["ready"]),
        },
        emails=sorted(user.email for user in approvers),
        now=now,
    )
    return revision


@dataclass(frozen=True)
class Seen:
    """What the approver saw and is deciding on: the revision's number and content hash."""

    revision: int
    content_hash: str


@transaction.atomic
def approval_decide(
    *,
    acting_user: Any,
    changelog: Changelog,
    decision: str,
    reason: str,
    seen: Seen,
    now: datetime | None = None,
) -> Approval:
    """Record a signing authority's decision on exactly the content they saw, then move the
    changelog to what its approvals now add up to.

    The decision names the revision and content hash shown to the approver; when the change
    was revised since (a new revision, other content), nothing is recorded and the answer is
    ``content_changed``: an approval signs those bytes or nothing. Locks the changelog, so a
    decision and an edit never interleave."""
    now = now or timezone.now()
    changelog = changelog_lock(changelog=changelog)
    revision = revision_current(changelog=changelog)
    if revision.status != RevisionStatus.SUBMITTED:
        raise Conflict(ApprovalError.CHANGELOG_NOT_SUBMITTED, "Only a submitted revision can be approved or rejected.")
    if (revision.number, revision.content_hash) != (seen.revision, seen.content_hash):
        raise content_changed(seen=seen, current=revision)
    if acting_user.is_service_account:
        raise PermissionDenied(ApprovalError.APPROVER_NOT_A_PERSON, "Pipelines cannot approve changes.")
    authorities = authorities_of(user=acting_user, domain=changelog.service.domain)
    if not authorities:
        raise PermissionDenied(
            ApprovalError.NO_SIGNING_AUTHORITY, f"You hold no signing authority for {changelog.service.domain.name}."
        )
    _refuse_own_change(acting_user, changelog, revision)
    if decision == Decision.REJECTED and not reason.strip():
        raise InvalidInput(
            ApprovalError.REASON_REQUIRED,
            "A rejection needs a reason.",
            fields={"reason": [field_error(ApprovalError.REASON_REQUIRED, "Say why the change is rejected.")]},
        )
    if Approval.objects.filter(revision=revision, approver=acting_user).exists():
        raise Conflict(ApprovalError.ALREADY_DECIDED, "You have already decided on this revision.")
    retrospective = Retrospective.objects.select_for_update().filter(changelog=changelog).first()
    policy = policy_for(service=changelog.service)
    approval = Approval.objects.create(
        changelog=changelog,
        revision=revision,
        content_hash=revision.content_hash,
        decision=decision,
        reason=reason.strip(),
        approver=acting_user,
        authorities=sorted(authorities),
        retrospective=retrospective is not None,
        decided_at=now,
        expires_at=now + timedelta(days=policy.rules.approval_validity_days),
    )
    state = approval_state_of(changelog=changelog, now=now, revision=revision)
    action = ApprovalAction.APPROVAL_APPROVED if decision == Decision.APPROVED else ApprovalAction.APPROVAL_REJECTED
    changelog_services.changelog_status_change(
        acting_user=acting_user, changelog=changelog, status=_status_after(changelog, state), cause=action, now=now
    )
    audit.record(
        actor=acting_user,
        action=action,
        target=changelog,
        data={
            "approval": str(approval.id),
            "revision": revision.number,
            "content_hash": revision.content_hash,
            "authorities": approval.authorities,
            "reason": approval.reason,
            "retrospective": approval.retrospective,
            "expires_at": approval.expires_at,
            "status": changelog.status,
            "approvals_missing": list(state.missing),
        },
    )
    _retrospective_follow_up(
        changelog, state, retrospective, hours=policy.rules.hotfix_retrospective_hours, actor=acting_user, now=now
    )
    return approval


def content_changed(*, seen: Seen, current: ChangelogRevision) -> Conflict:
    message = (
        f"The change was revised after you opened it: you decided on revision {seen.revision} "
        f"(content hash {seen.content_hash[:12]}…), it is now revision {current.number} "
        f"(content hash {current.content_hash[:12]}…). Nothing was recorded; review what changed and decide again."
    )
    return Conflict(
        ApprovalError.CONTENT_CHANGED,
        message,
        fields={
            "revision": [field_error(ApprovalError.CONTENT_CHANGED, f"The current revision is {current.number}.")],
            "content_hash": [
                field_error(ApprovalError.CONTENT_CHANGED, f"The current content hash is {current.content_hash}.")
            ],
        },
    )


@transaction.atomic
def approval_refusal_record(
    *, acting_user: Any, changelog: Changelog, decision: str, seen: Seen | None, error: ApplicationError
) -> None:
    """Record a refused decision (THREATS.md: every refusal about authority is recorded). Runs
    in a transaction of its own, after the refused one rolled back."""
    audit.record(
        actor=acting_user,
        action=ApprovalAction.APPROVAL_REFUSED,
        target=changelog,
        data={
            "decision": decision,
            "revision": seen.revision if seen else None,
            "content_hash": seen.content_hash if seen else None,
            "code": error.code,
            "message": error.message,
        },
    )


def _refuse_own_change(user: Any, changelog: Changelog, revision: ChangelogRevision) -> None:
    """Separation of duties, refused at the door (the counting rules check it again)."""
    if user.pk in requester_ids(changelog=changelog):
        raise PermissionDenied(ApprovalError.OWN_CHANGE, "You may not approve a change you requested or submitted.")
    if revision.evidence.filter(uploaded_by=user).exists():
        raise PermissionDenied(
            ApprovalError.OWN_CHANGE, "You uploaded evidence of this change; someone else must approve it."
        )
    authors = {author.lower() for author in revision.content.get("commit_authors", [])}
    if {user.username.lower(), (user.email or "").lower()} & authors:
        raise PermissionDenied(ApprovalError.OWN_CHANGE, "You are a declared commit author of this change.")


def _status_after(changelog: Changelog, state: Any) -> str:
    if state.status == ApprovalStatus.REJECTED:
        return ChangelogStatus.REJECTED
    if state.status == ApprovalStatus.APPROVED:
        return ChangelogStatus.APPROVED
    if changelog.kind == ChangelogKind.HOTFIX and state.one_independent_approval:
        return ChangelogStatus.APPROVED  # cleared for the gate; the retrospective owes the rest
    return ChangelogStatus.SUBMITTED


def _retrospective_follow_up(
    changelog: Changelog, state: Any, retrospective: Retrospective | None, *, hours: int, actor: Any, now: datetime
) -> None:
    if changelog.kind != ChangelogKind.HOTFIX:
        return
    if retrospective is None and state.one_independent_approval and state.status != ApprovalStatus.APPROVED:
        retrospective = Retrospective.objects.create(
            changelog=changelog, service_id=changelog.service_id, opened_at=now, due_at=now + timedelta(hours=hours)
        )
        audit.record(
            actor=actor,
            action=ApprovalAction.RETROSPECTIVE_OPENED,
            target=changelog,
            data={"due_at": retrospective.due_at, "approvals_missing": list(state.missing)},
        )
    elif (
        retrospective is not None
        and retrospective.status != RetrospectiveStatus.COMPLETED
        and state.status == ApprovalStatus.APPROVED
    ):
        retrospective.status = RetrospectiveStatus.COMPLETED
        retrospective.completed_at = now
        retrospective.save(update_fields=["status", "completed_at"])
        audit.record(
            actor=actor,
            action=ApprovalAction.RETROSPECTIVE_COMPLETED,
            target=changelog,
            data={"due_at": retrospective.due_at, "late": now > retrospective.due_at},
        )


def retrospectives_mark_overdue(*, now: datetime | None = None) -> int:
    """Mark open retrospectives past their deadline as overdue, once each, and tell the
    domain's signing authorities. Run by beat; safe to run concurrently (skip locked)."""
    now = now or timezone.now()
    marked = 0
    while True:
        with transaction.atomic():
            retrospective = (
                Retrospective.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("changelog__service__domain")
                .filter(status=RetrospectiveStatus.OPEN, due_at__lte=now)
                .order_by("due_at")
                .first()
            )
            if retrospective is None:
                return marked
            _mark_overdue(retrospective, now)
            marked += 1


def _mark_overdue(retrospective: Retrospective, now: datetime) -> None:
    changelog = retrospective.changelog
    retrospective.status = RetrospectiveStatus.OVERDUE
    retrospective.overdue_at = now
    retrospective.save(update_fields=["status", "overdue_at"])
    state = approval_state_of(changelog=changelog, now=now)
    audit.record(
        actor=SYSTEM,
        action=ApprovalAction.RETROSPECTIVE_OVERDUE,
        target=changelog,
        data={"due_at": retrospective.due_at, "approvals_missing": list(state.missing)},
    )
    approvers = authority_holders(domain=changelog.service.domain)
    notification_enqueue(
        event="retrospective.overdue",
        subject=f"[Release Gate] OVERDUE: retrospective approval of hotfix {changelog.service.slug}",
        payload={
            "changelog": str(changelog.id),
            "service": changelog.service.slug,
            "domain": changelog.service.domain.slug,
            "due_at": retrospective.due_at.isoformat(),
            "approvals_missing": list(state.missing),
        },
        emails=sorted(user.email for user in approvers if user.email),
        now=now,
    )
