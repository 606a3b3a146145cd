"""Writes for approvals: the authority matrix, submitting for approval, deciding, and hotfix
retrospectives. Each runs in one transaction with its audit event."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

import audit
from approvals.audit_actions import ApprovalAction
from approvals.deadlines import retrospective_due
from approvals.errors import ApprovalError
from approvals.models import (
    GRANT_OPEN,
    Approval,
    ApprovalSignature,
    AuthorityGrant,
    Decision,
    GrantKind,
    GrantStatus,
    PostImplementationReview,
    Retrospective,
    RetrospectiveStatus,
)
from approvals.notifications import notification_enqueue
from approvals.rules import ApprovalStatus, Authority
from approvals.selectors import approval_state_of, authorities_of, authority_emails, authority_holders, requester_ids
from audit.clock import business_now
from audit.services import SYSTEM
from changelogs import services as changelog_services
from changelogs.authors import identities
from changelogs.content_rules import Invalid, Record, Text
from changelogs.models import Changelog, ChangelogKind, ChangelogRevision, ChangelogStatus, Domain, RevisionStatus
from changelogs.selectors import changelog_lock, commit_authors_of, policy_for, revision_current
from core.actors import ActingUser, StepUp, step_up_require
from core.errors import ApplicationError, CommonError, Conflict, InvalidInput, PermissionDenied, field_error
from identity.challenge import approval_challenge
from identity.services import assertion_verify


def _authority(value: str) -> Authority:
    try:
        return Authority(value)
    except ValueError:
        raise InvalidInput(
            ApprovalError.UNKNOWN_AUTHORITY, f"Unknown authority {value!r}; use one of {', '.join(Authority)}."
        ) from None


# --- Signing authorities: asked for by one administrator, put in force by a second -----------


def _require_administrator(user: ActingUser) -> None:
    if not (getattr(user, "is_active", False) and user.has_perm("approvals.change_authoritygrant")):
        raise PermissionDenied(ApprovalError.NOT_AN_ADMINISTRATOR, "Only administrators manage signing authorities.")


def _refuse_self(acting_user: ActingUser, *, user: ActingUser | None, group: Group | None) -> None:
    """Nobody asks for, or confirms, power for themselves: not for their own account, not for
    a group they belong to."""
    if user is not None and user.pk == acting_user.pk:
        raise PermissionDenied(ApprovalError.GRANT_TO_SELF, "You may not grant signing authority to yourself.")
    if group is not None and group.user_set.filter(pk=acting_user.pk).exists():
        raise PermissionDenied(
            ApprovalError.GRANT_TO_SELF, f"You are a member of {group.name}: you may not grant it signing authority."
        )


def _grant_data(grant: AuthorityGrant, old_status: str | None) -> dict[str, Any]:
    return {
        "grant": str(grant.id),
        "kind": grant.kind,
        "grant_of": grant.describe(),
        "domain": grant.domain.slug if grant.domain else None,
        "authority": grant.authority or None,
        "user": grant.user.username if grant.user else None,
        "group": grant.group.name if grant.group else None,
        "reason": grant.reason,
        "status": {"from": old_status, "to": grant.status},
        "requested_by": grant.requested_by.username if grant.requested_by else None,
        "decided_by": grant.decided_by.username if grant.decided_by else None,
    }


def _grant_target(grant: AuthorityGrant) -> Any:
    return grant.domain if grant.kind == GrantKind.AUTHORITY else ("auth.group", str(grant.group_id))


def _grant_request(
    *,
    acting_user: ActingUser,
    kind: str,
    domain: Domain | None,
    authority: str,
    user: ActingUser | None,
    group: Group | None,
    reason: str,
    step_up: StepUp | None,
) -> AuthorityGrant:
    _require_administrator(acting_user)
    step_up_require(step_up, acting_user=acting_user)
    if not reason.strip():
        raise InvalidInput(
            ApprovalError.REASON_REQUIRED,
            "Say why the authority is granted.",
            fields={"reason": [field_error(ApprovalError.REASON_REQUIRED, "Say why.")]},
        )
    if user is not None and user.is_service_account:
        raise InvalidInput(ApprovalError.APPROVER_NOT_A_PERSON, "Pipelines cannot hold signing authority.")
    _refuse_self(acting_user, user=user, group=group)
    subject = AuthorityGrant.subject_of(
        kind=kind,
        domain_id=domain.pk if domain else None,
        authority=authority,
        user_id=user.pk if user else None,
        group_id=group.pk if group else None,
    )
    if AuthorityGrant.objects.select_for_update().filter(subject=subject, status__in=GRANT_OPEN).exists():
        raise Conflict(ApprovalError.GRANT_EXISTS, "This is already granted, or waiting for a second administrator.")
    grant = AuthorityGrant.objects.create(
        kind=kind,
        domain=domain,
        authority=authority,
        user=user,
        group=group,
        subject=subject,
        reason=reason.strip(),
        requested_by=acting_user,
        requested_at=timezone.now(),
    )
    audit.record(
        actor=acting_user,
        action=ApprovalAction.AUTHORITY_REQUESTED,
        target=_grant_target(grant),
        data=_grant_data(grant, None),
    )
    return grant


@transaction.atomic
def authority_grant_request(
    *,
    acting_user: ActingUser,
    domain: Domain,
    authority: str,
    reason: str,
    step_up: StepUp | None,
    user: ActingUser | None = None,
    group: Group | None = None,
) -> AuthorityGrant:
    """Ask for a signing authority on a domain for a person or a group. It takes effect when a
    second administrator confirms it (``grant_confirm``)."""
    if (user is None) == (group is None):
        raise InvalidInput(ApprovalError.GRANTEE_REQUIRED, "Grant to exactly one person or one group.")
    return _grant_request(
        acting_user=acting_user,
        kind=GrantKind.AUTHORITY,
        domain=domain,
        authority=_authority(authority).value,
        user=user,
        group=group,
        reason=reason,
        step_up=step_up,
    )


@transaction.atomic
def membership_grant_request(
    *, acting_user: ActingUser, group: Group, user: ActingUser, reason: str, step_up: StepUp | None
) -> AuthorityGrant:
    """Ask for a person to join a group that holds signing authority: being made a signing
    authority through the group, so a second administrator confirms it too."""
    if not AuthorityGrant.objects.filter(kind=GrantKind.AUTHORITY, group=group, status__in=GRANT_OPEN).exists():
        raise InvalidInput(
            ApprovalError.GROUP_WITHOUT_AUTHORITY,
            f"{group.name} holds no signing authority: change its members on the user's page.",
        )
    return _grant_request(
        acting_user=acting_user,
        kind=GrantKind.MEMBERSHIP,
        domain=None,
        authority="",
        user=user,
        group=group,
        reason=reason,
        step_up=step_up,
    )


# What each decision on a grant needs it to be, and the refusal otherwise.
_GRANT_MUST_BE = {
    GrantStatus.PENDING: (ApprovalError.GRANT_NOT_PENDING, "not waiting for confirmation"),
    GrantStatus.ACTIVE: (ApprovalError.GRANT_NOT_ACTIVE, "not in force"),
}


def _grant_locked(
    grant: AuthorityGrant, *, acting_user: ActingUser, step_up: StepUp | None, status: GrantStatus
) -> AuthorityGrant:
    """An administrator who stepped up just now, and the grant locked and still ``status``."""
    _require_administrator(acting_user)
    step_up_require(step_up, acting_user=acting_user)
    locked: AuthorityGrant = (
        AuthorityGrant.objects.select_for_update(no_key=True, of=("self",))
        .select_related("domain", "user", "group", "requested_by", "decided_by")
        .get(pk=grant.pk)
    )
    if locked.status != status:
        code, wording = _GRANT_MUST_BE[status]
        raise Conflict(code, f"This grant is {locked.status}, {wording}.")
    return locked


def _grant_recorded(grant: AuthorityGrant, *, acting_user: ActingUser, action: str, was: str) -> AuthorityGrant:
    audit.record(actor=acting_user, action=action, target=_grant_target(grant), data=_grant_data(grant, was))
    return grant


@transaction.atomic
def grant_confirm(
    *, acting_user: ActingUser, grant: AuthorityGrant, step_up: StepUp | None, now: datetime | None = None
) -> AuthorityGrant:
    """A second administrator puts a requested grant in force. Refused to the one who asked
    for it and to anyone it would empower."""
    grant = _grant_locked(grant, acting_user=acting_user, step_up=step_up, status=GrantStatus.PENDING)
    if grant.requested_by_id == acting_user.pk:
        raise PermissionDenied(
            ApprovalError.GRANT_OWN_REQUEST, "You asked for this grant: a second administrator must confirm it."
        )
    _refuse_self(acting_user, user=grant.user, group=grant.group if grant.kind == GrantKind.AUTHORITY else None)
    now = now or timezone.now()
    grant.status, grant.decided_by, grant.decided_at = GrantStatus.ACTIVE, acting_user, now
    grant.save(update_fields=["status", "decided_by", "decided_at"])
    _grant_apply(grant, acting_user=acting_user, now=now)
    return _grant_recorded(
        grant, acting_user=acting_user, action=ApprovalAction.AUTHORITY_GRANTED, was=GrantStatus.PENDING
    )


def _member(grant: AuthorityGrant) -> Any:
    if grant.user is None or grant.group is None:
        raise RuntimeError(f"membership grant {grant.pk} without its person or group")  # the constraint forbids it
    return grant.user


def _grant_apply(grant: AuthorityGrant, *, acting_user: ActingUser, now: datetime) -> None:
    """Mirror a grant now in force into what decides visibility and notifications."""
    if grant.kind == GrantKind.MEMBERSHIP:
        _member(grant).groups.add(grant.group)
        return
    assign_perm(f"changelogs.{grant.authority}", grant.user or grant.group, grant.domain)
    if grant.group is None:
        return
    # The group's members at confirmation were on the confirming administrator's screen: their
    # membership is confirmed with the grant (later joiners need a membership grant of their own).
    for member in grant.group.user_set.filter(is_service_account=False):
        subject = AuthorityGrant.subject_of(kind=GrantKind.MEMBERSHIP, user_id=member.pk, group_id=grant.group_id)
        if not AuthorityGrant.objects.filter(subject=subject, status__in=GRANT_OPEN).exists():
            AuthorityGrant.objects.create(
                kind=GrantKind.MEMBERSHIP,
                user=member,
                group=grant.group,
                subject=subject,
                status=GrantStatus.ACTIVE,
                reason=f"A member when {grant.describe()} was confirmed.",
                requested_by=grant.requested_by,
                requested_at=now,
                decided_by=acting_user,
                decided_at=now,
            )


@transaction.atomic
def grant_refuse(
    *, acting_user: ActingUser, grant: AuthorityGrant, step_up: StepUp | None, now: datetime | None = None
) -> AuthorityGrant:
    """Turn down a requested grant (another administrator), or withdraw it (its requester)."""
    grant = _grant_locked(grant, acting_user=acting_user, step_up=step_up, status=GrantStatus.PENDING)
    grant.status, grant.decided_by, grant.decided_at = GrantStatus.REFUSED, acting_user, now or timezone.now()
    grant.save(update_fields=["status", "decided_by", "decided_at"])
    return _grant_recorded(
        grant, acting_user=acting_user, action=ApprovalAction.AUTHORITY_REFUSED, was=GrantStatus.PENDING
    )


@transaction.atomic
def grant_revoke(
    *, acting_user: ActingUser, grant: AuthorityGrant, step_up: StepUp | None, now: datetime | None = None
) -> AuthorityGrant:
    """End a grant in force. One administrator may take power away."""
    grant = _grant_locked(grant, acting_user=acting_user, step_up=step_up, status=GrantStatus.ACTIVE)
    grant.status, grant.revoked_by, grant.revoked_at = GrantStatus.REVOKED, acting_user, now or timezone.now()
    grant.save(update_fields=["status", "revoked_by", "revoked_at"])
    if grant.kind == GrantKind.MEMBERSHIP:
        _member(grant).groups.remove(grant.group)
    else:
        remove_perm(f"changelogs.{grant.authority}", grant.user or grant.group, grant.domain)
    return _grant_recorded(
        grant, acting_user=acting_user, action=ApprovalAction.AUTHORITY_REVOKED, was=GrantStatus.ACTIVE
    )


@transaction.atomic
def authority_refusal_record(
    *, acting_user: ActingUser, attempted: str, grant: AuthorityGrant | None, error: ApplicationError
) -> None:
    """Record a refused attempt to change who may sign (asking for, confirming, refusing or
    revoking a grant), in a transaction of its own after the refused one rolled back."""
    audit.record(
        actor=acting_user,
        action=ApprovalAction.AUTHORITY_ATTEMPT_REFUSED,
        target=_grant_target(grant) if grant else ("approvals.authoritygrant", ""),
        data={
            "attempted": attempted,
            "grant": str(grant.id) if grant else None,
            "grant_of": grant.describe() if grant else None,
            "code": error.code,
            "message": error.message,
        },
    )


@transaction.atomic
def changelog_submit_for_approval(
    *, acting_user: ActingUser, changelog: Changelog, now: datetime | None = None
) -> ChangelogRevision:
    """Freeze and hash the draft (changelogs), then tell the domain's signing authorities. Locks
    the changelog; the acting user must manage its service (403 ``changelog_read_only``)."""
    changelog_services.changelog_lock_to_change(acting_user=acting_user, changelog=changelog)
    now = now or business_now()
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
    acting_user: ActingUser,
    changelog: Changelog,
    decision: str,
    reason: str,
    seen: Seen,
    step_up: StepUp | None,
    assertion: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Approval:
    """Record a signing authority's decision on exactly the content they saw, then move the
    changelog to what its approvals now add up to.

    The decision names the revision and content hash shown to the approver; when the change
    was revised since (a new revision, other content), nothing is recorded and the answer is
    ``content_changed``: an approval signs those bytes or nothing. Locks the changelog, so a
    decision and an edit never interleave.

    With an ``assertion`` (a WebAuthn PublicKeyCredential as JSON) the decision is signed: the
    assertion must verify, by one of the approver's confirmed passkeys, over the challenge
    derived from exactly this decision (identity.challenge); it is kept with the approval."""
    step_up_require(step_up, acting_user=acting_user)
    now = now or business_now()
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
    challenge = approval_challenge(
        changelog_id=str(changelog.pk),
        revision=revision.number,
        content_hash=revision.content_hash,
        decision=decision,
        reason=reason.strip(),
    )
    verified = (
        assertion_verify(user=acting_user, credential=assertion, challenge=challenge, require_confirmed=True)
        if assertion is not None
        else None
    )
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
    if verified is not None:
        ApprovalSignature.objects.create(
            approval=approval,
            passkey=verified.passkey,
            credential_id=verified.credential_id,
            authenticator_data=verified.authenticator_data,
            client_data_json=verified.client_data_json,
            signature=verified.signature,
            public_key_pem=verified.passkey.public_key_pem,
            challenge=challenge.hex(),
            rp_id=settings.WEBAUTHN_RP_ID,
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
            "signed_with": verified.credential_id if verified else None,
            "challenge": challenge.hex() if verified else None,
            "status": changelog.status,
            "approvals_missing": list(state.missing),
        },
    )
    _retrospective_follow_up(changelog, state, retrospective, rules=policy.rules, actor=acting_user, now=now)
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
    *, acting_user: ActingUser, changelog: Changelog, decision: str, seen: Seen | None, error: ApplicationError
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


def independence_require(*, user: ActingUser, changelog: Changelog) -> None:
    """Refuse anyone who is not independent of the change (its requester, an uploader of its
    evidence, a commit author): for approvals and for what follows the same rules, such as
    letting the change through a freeze."""
    _refuse_own_change(user, changelog, revision_current(changelog=changelog))


def _refuse_own_change(user: ActingUser, changelog: Changelog, revision: ChangelogRevision) -> None:
    """Separation of duties, refused at the door (the counting rules check it again)."""
    if user.pk in requester_ids(changelog=changelog):
        raise PermissionDenied(ApprovalError.OWN_CHANGE, "You may not approve a change you requested or submitted.")
    if revision.evidence.filter(uploaded_by=user).exists():
        raise PermissionDenied(
            ApprovalError.OWN_CHANGE, "You uploaded evidence of this change; someone else must approve it."
        )
    authors = commit_authors_of(revision=revision)
    if authors.excludes(username=user.username, email=user.email or ""):
        read = identities(name_or_login=user.username, email=user.email or "") & authors.verified_identities
        where = "read from GitHub" if read else "declared by the pipeline"
        raise PermissionDenied(ApprovalError.OWN_CHANGE, f"You are a commit author of this change ({where}).")


def _status_after(changelog: Changelog, state: Any) -> str:
    if state.status == ApprovalStatus.REJECTED:
        return ChangelogStatus.REJECTED
    if state.status == ApprovalStatus.APPROVED:
        return ChangelogStatus.APPROVED
    if changelog.kind == ChangelogKind.HOTFIX and state.one_independent_approval:
        return ChangelogStatus.APPROVED  # cleared for the gate; the retrospective owes the rest
    return ChangelogStatus.SUBMITTED


def _retrospective_due(opened: datetime, rules: Any) -> datetime:
    """The policy's window: so many hours, or the organisation's next business day."""
    closes = settings.ORGANISATION_WORKING_HOURS.partition("-")[2]
    return retrospective_due(
        opened,
        hours=rules.hotfix_retrospective_hours,
        next_business_day=rules.hotfix_retrospective_deadline == "next_business_day",
        zone=ZoneInfo(settings.ORGANISATION_TIME_ZONE),
        closes=time.fromisoformat(closes),
        working_days=range(5),
        holidays=[date.fromisoformat(day) for day in settings.ORGANISATION_HOLIDAYS],
    )


def _retrospective_follow_up(
    changelog: Changelog,
    state: Any,
    retrospective: Retrospective | None,
    *,
    rules: Any,
    actor: ActingUser,
    now: datetime,
) -> None:
    """Every hotfix opens a retrospective with its first independent approval, whatever its
    tier (PR-08): one whose tier needs no more approvals still owes its post-implementation
    review. The full approvals are noted when they are in; the retrospective is complete once
    the review is attached too."""
    if changelog.kind != ChangelogKind.HOTFIX:
        return
    if retrospective is None and state.one_independent_approval:
        retrospective = Retrospective.objects.create(
            changelog=changelog, service_id=changelog.service_id, opened_at=now, due_at=_retrospective_due(now, rules)
        )
        audit.record(
            actor=actor,
            action=ApprovalAction.RETROSPECTIVE_OPENED,
            target=changelog,
            data={"due_at": retrospective.due_at, "approvals_missing": list(state.missing)},
        )
    if retrospective is not None and retrospective.approved_at is None and state.status == ApprovalStatus.APPROVED:
        retrospective.approved_at = now
        retrospective.save(update_fields=["approved_at"])
    if retrospective is not None:
        _retrospective_complete_when_owed_nothing(changelog, retrospective, actor=actor, now=now)


def _retrospective_complete_when_owed_nothing(
    changelog: Changelog, retrospective: Retrospective, *, actor: ActingUser, now: datetime
) -> None:
    owed = (
        retrospective.approved_at is None
        or not PostImplementationReview.objects.filter(retrospective=retrospective).exists()
    )
    if owed or retrospective.status == RetrospectiveStatus.COMPLETED:
        return
    retrospective.status = RetrospectiveStatus.COMPLETED
    retrospective.completed_at = now
    retrospective.save(update_fields=["status", "completed_at"])
    audit.record(
        actor=actor,
        action=ApprovalAction.RETROSPECTIVE_COMPLETED,
        target=changelog,
        data={"due_at": retrospective.due_at, "late": now > retrospective.due_at},
    )


# What has gone out: closing follows it.
_IMPLEMENTED = frozenset({ChangelogStatus.DEPLOYED, ChangelogStatus.ROLLED_BACK})


# A post-implementation review as written (approvals.apis.ReviewInput describes it for the
# schema; tests/approvals/test_services_guard_themselves.py holds the two equal).
REVIEW = Record(
    fields={
        "summary": Text(max_length=20000),
        "follow_up": Text(max_length=20000, required=False, default="", allow_blank=True),
    }
)


def review_validate(review: Any) -> dict[str, Any]:
    """The review's fields, trimmed, or 400 ``invalid_input`` with the REST framework's errors."""
    if not isinstance(review, Mapping):
        message, code = (
            ("No data provided", "null")
            if review is None
            else (f"Invalid data. Expected a dictionary, but got {type(review).__name__}.", "invalid")
        )
        errors = {"": [field_error(code, message)]}  # where the API puts errors of the whole body
    else:
        try:
            checked: dict[str, Any] = REVIEW.check_record(review, "", {})
        except Invalid as invalid:
            errors = invalid.errors
        else:
            return checked
    first = next(iter(errors.values()))[0]["message"]
    raise InvalidInput(CommonError.INVALID_INPUT, f"The input is not valid: {first}", fields=errors)


@transaction.atomic
def retrospective_review_attach(
    *, acting_user: ActingUser, changelog: Changelog, review: Mapping[str, Any], now: datetime | None = None
) -> PostImplementationReview:
    """Attach the hotfix's post-implementation review to its retrospective (PR-09), once, by a
    person; completes the retrospective when its approvals are in. Normally written after the
    deployment, but not refused before it: a hotfix that never went out (superseded, rejected
    later) still owes its retrospective, and its review is what says so; the audit event
    records the change's status when the review was written.

    Locks the changelog; the acting user must manage its service (403 ``changelog_read_only``),
    then ``review`` (``summary``, ``follow_up``) is checked as the API always checked it (400)."""
    changelog_services.changelog_lock_to_change(acting_user=acting_user, changelog=changelog)
    values = review_validate(review)
    now = now or business_now()
    if acting_user.is_service_account:
        raise PermissionDenied(
            ApprovalError.REVIEWER_NOT_A_PERSON, "A post-implementation review is written by a person."
        )
    summary, follow_up = values["summary"], values["follow_up"]
    if not summary:
        message = "Say what happened, what the hotfix changed and whether it worked."
        raise InvalidInput(
            ApprovalError.REVIEW_SUMMARY_REQUIRED,
            message,
            fields={"summary": [field_error(ApprovalError.REVIEW_SUMMARY_REQUIRED, message)]},
        )
    retrospective = Retrospective.objects.select_for_update().filter(changelog=changelog).first()
    if retrospective is None:
        raise Conflict(
            ApprovalError.NO_RETROSPECTIVE,
            "Only a hotfix that went out on its first approval has a retrospective to review.",
        )
    if PostImplementationReview.objects.filter(retrospective=retrospective).exists():
        raise Conflict(ApprovalError.REVIEW_EXISTS, "This hotfix's post-implementation review is already attached.")
    attached = PostImplementationReview.objects.create(
        retrospective=retrospective, summary=summary, follow_up=follow_up, written_by=acting_user, written_at=now
    )
    audit.record(
        actor=acting_user,
        action=ApprovalAction.RETROSPECTIVE_REVIEWED,
        target=changelog,
        data={"review": str(attached.id), "summary": summary, "follow_up": follow_up, "status": changelog.status},
    )
    _retrospective_complete_when_owed_nothing(changelog, retrospective, actor=acting_user, now=now)
    return attached


def hotfix_owes(*, changelog: Changelog) -> dict[str, str]:
    """What a hotfix still owes before it may close, by field: its tests (staging test evidence
    on the revision that went out), its retrospective's full approvals and its
    post-implementation review. Empty when nothing is owed (or for a train)."""
    if changelog.kind != ChangelogKind.HOTFIX:
        return {}
    owed = {}
    if not revision_current(changelog=changelog).evidence.filter(kind="sanity").exists():
        owed["tests"] = "No test evidence (sanity) is attached to the revision that went out."
    retrospective = Retrospective.objects.filter(changelog=changelog).first()
    if retrospective is None or retrospective.approved_at is None:
        owed["approvals"] = "The retrospective's full approvals of the change's risk tier are not in."
    if retrospective is None or not PostImplementationReview.objects.filter(retrospective=retrospective).exists():
        owed["post_implementation_review"] = "No post-implementation review is attached."
    return owed


@transaction.atomic
def changelog_close(*, acting_user: ActingUser, changelog: Changelog, now: datetime | None = None) -> None:
    """Close a deployed or rolled-back change: its record is finished. A hotfix closes only once
    its tests and post-implementation review are attached and its retrospective's approvals are
    in (PR-09); refused with ``hotfix_not_closable`` naming what is owed, and nothing changes.
    Locks the changelog; the acting user must manage its service (403 ``changelog_read_only``)."""
    changelog_services.changelog_lock_to_change(acting_user=acting_user, changelog=changelog)
    now = now or business_now()
    if changelog.status in _IMPLEMENTED:
        owed = hotfix_owes(changelog=changelog)
        if owed:
            raise Conflict(
                ApprovalError.HOTFIX_NOT_CLOSABLE,
                f"The hotfix cannot close yet: {' '.join(owed.values())}",
                fields={name: [field_error(ApprovalError.HOTFIX_NOT_CLOSABLE, text)] for name, text in owed.items()},
            )
    changelog_services.changelog_status_change(
        acting_user=acting_user,
        changelog=changelog,
        status=ChangelogStatus.CLOSED,
        cause=ApprovalAction.CHANGELOG_CLOSED,
        now=now,
    )


def retrospectives_mark_overdue(*, now: datetime | None = None) -> int:
    """Mark open retrospectives past their deadline as overdue, once each, and tell the
    domain's signing authorities; then escalate those still owed long after (the second
    level). Run by beat; safe to run concurrently (skip locked)."""
    now = now or business_now()
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
                break
            _mark_overdue(retrospective, now)
            marked += 1
    _escalate_overdue(now)
    return marked


def _escalate_overdue(now: datetime) -> None:
    """The second level (PR-09): retrospectives still overdue RETROSPECTIVE_ESCALATION_HOURS after
    their deadline go once to RETROSPECTIVE_ESCALATION_EMAILS, audited."""
    to = sorted(settings.RETROSPECTIVE_ESCALATION_EMAILS)
    if not to:
        return
    late = now - timedelta(hours=settings.RETROSPECTIVE_ESCALATION_HOURS)
    while True:
        with transaction.atomic():
            retrospective = (
                Retrospective.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("changelog__service__domain")
                .filter(status=RetrospectiveStatus.OVERDUE, due_at__lte=late, escalated_at__isnull=True)
                .order_by("due_at")
                .first()
            )
            if retrospective is None:
                return
            retrospective.escalated_at = now
            retrospective.save(update_fields=["escalated_at"])
            changelog = retrospective.changelog
            payload = {
                "changelog": str(changelog.id),
                "service": changelog.service.slug,
                "domain": changelog.service.domain.slug,
                "due_at": retrospective.due_at.isoformat(),
                "overdue_since": retrospective.overdue_at.isoformat() if retrospective.overdue_at else None,
            }
            audit.record(
                actor=SYSTEM,
                action=ApprovalAction.RETROSPECTIVE_ESCALATED,
                target=changelog,
                data={**payload, "to": to},
            )
            notification_enqueue(
                event="retrospective.escalated",
                subject=f"[Release Gate] ESCALATED: hotfix {changelog.service.slug} still lacks its retrospective",
                payload=payload,
                emails=to,
                now=now,
            )


def _mark_overdue(retrospective: Retrospective, now: datetime) -> None:
    changelog = retrospective.changelog
    retrospective.status = RetrospectiveStatus.OVERDUE
    retrospective.overdue_at = now
    retrospective.save(update_fields=["status", "overdue_at"])
    state = approval_state_of(changelog=changelog, now=now)
    review_missing = not PostImplementationReview.objects.filter(retrospective=retrospective).exists()
    audit.record(
        actor=SYSTEM,
        action=ApprovalAction.RETROSPECTIVE_OVERDUE,
        target=changelog,
        data={
            "due_at": retrospective.due_at,
            "approvals_missing": list(state.missing),
            "review_missing": review_missing,
        },
    )
    notification_enqueue(
        event="retrospective.overdue",
        subject=f"[Release Gate] OVERDUE: retrospective approval of hotfix {changelog.service.slug}",
        payload={
            "changelog": str(changelog.id),
            "service": changelog.service.slug,
            "domain": changelog.service.domain.slug,
            "due_at": retrospective.due_at.isoformat(),
            "approvals_missing": list(state.missing),
            "review_missing": review_missing,
        },
        emails=authority_emails(domain=changelog.service.domain),
        now=now,
    )
