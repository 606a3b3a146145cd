"""Reads for approvals: who holds authority, the state of a changelog's approvals, the queue."""

from datetime import datetime
from typing import Any

from django.contrib.auth.models import Group
from django.db.models import Q, QuerySet
from guardian.shortcuts import get_group_perms, get_user_perms, get_users_with_perms

from approvals.models import Approval, Retrospective, RetrospectiveStatus
from approvals.rules import ApprovalFact, ApprovalState, Authority, approval_context, approval_state
from changelogs.models import Changelog, ChangelogRevision, ChangelogStatus, Domain, RevisionStatus
from changelogs.selectors import domain_list_with_authority, policy_for, revision_current

AUTHORITY_PERMISSIONS = tuple(authority.value for authority in Authority)


def authorities_of(*, user: Any, domain: Domain) -> frozenset[str]:
    """The authorities the user holds for the domain, directly or through a group. Granted
    explicitly only: being a superuser is not a signing authority."""
    if not getattr(user, "is_authenticated", False) or not user.is_active or user.is_service_account:
        return frozenset()
    held = {str(p) for p in get_user_perms(user, domain)} | {str(p) for p in get_group_perms(user, domain)}
    return frozenset(held & set(AUTHORITY_PERMISSIONS))


def authority_holders(*, domain: Domain, authority: str = Authority.SIGN_OFF) -> list[Any]:
    """Active people holding the authority on the domain (for notifications)."""
    users: Any = get_users_with_perms(
        domain, only_with_perms_in=[authority], with_group_users=True, with_superusers=False
    )
    return [user for user in users if user.is_active and not user.is_service_account]


def authority_grants(*, domain: Domain) -> dict[str, dict[str, list[str]]]:
    """Who holds what on the domain: {"users": {username: [authorities]}, "groups": {...}}."""
    from guardian.shortcuts import get_groups_with_perms

    users: Any = get_users_with_perms(domain, attach_perms=True, with_group_users=False, with_superusers=False)
    groups: Any = get_groups_with_perms(domain, attach_perms=True)
    return {
        "users": {u.username: sorted(set(p) & set(AUTHORITY_PERMISSIONS)) for u, p in users.items()},
        "groups": {g.name: sorted(set(p) & set(AUTHORITY_PERMISSIONS)) for g, p in groups.items()},
    }


def approval_list(*, changelog: Changelog) -> QuerySet[Approval]:
    return Approval.objects.filter(changelog=changelog).select_related("approver", "revision").order_by("decided_at")


def requester_ids(*, changelog: Changelog) -> frozenset[int]:
    """Everyone who created, edited into being or submitted any revision of the change."""
    ids = {changelog.created_by_id}
    for created_by, submitted_by in changelog.revisions.values_list("created_by_id", "submitted_by_id"):
        ids.add(created_by)
        if submitted_by:
            ids.add(submitted_by)
    return frozenset(ids)


def approval_state_of(
    *, changelog: Changelog, now: datetime, revision: ChangelogRevision | None = None
) -> ApprovalState:
    """The approval state of the changelog's current (or given) revision, now."""
    revision = revision or revision_current(changelog=changelog)
    policy = policy_for(service=changelog.service)
    context = approval_context(
        revision_number=revision.number,
        content_hash=revision.content_hash,
        content=revision.content,
        requester_ids=requester_ids(changelog=changelog),
        evidence_uploader_ids=frozenset(revision.evidence.values_list("uploaded_by_id", flat=True)),
        required_by_tier=policy.rules.required_approvals,
        now=now,
    )
    domain = changelog.service.domain
    held: dict[int, frozenset[str]] = {}
    facts = []
    for approval in approval_list(changelog=changelog):
        if approval.approver_id not in held:
            held[approval.approver_id] = authorities_of(user=approval.approver, domain=domain)
        facts.append(
            ApprovalFact(
                id=str(approval.id),
                approver_id=approval.approver_id,
                approver_username=approval.approver.username,
                approver_email=approval.approver.email,
                decision=approval.decision,
                revision_number=approval.revision.number,
                content_hash=approval.content_hash,
                decided_at=approval.decided_at,
                expires_at=approval.expires_at,
                authorities_now=held[approval.approver_id],
            )
        )
    return approval_state(context, facts)


def queue_for(*, user: Any) -> QuerySet[Changelog]:
    """Changelogs waiting for the user's sign-off: submitted, in a domain where the user holds
    authority, not the user's own, not yet decided by the user; oldest submission first.
    Hotfixes with an open retrospective stay in the queue until it is complete."""
    domains = domain_list_with_authority(user=user)
    decided = Approval.objects.filter(approver=user).values("revision_id")
    waiting = Q(status=ChangelogStatus.SUBMITTED) | Q(
        retrospective__status__in=[RetrospectiveStatus.OPEN, RetrospectiveStatus.OVERDUE]
    )
    return (
        Changelog.objects.filter(
            waiting, service__domain__in=domains, current_revision__status=RevisionStatus.SUBMITTED
        )
        .exclude(current_revision__in=decided)
        .exclude(created_by=user)
        .select_related("service", "service__domain", "created_by", "current_revision")
        .order_by("current_revision__submitted_at", "id")
    )


def retrospective_list(*, status: str | None = None) -> QuerySet[Retrospective]:
    retrospectives = Retrospective.objects.select_related(
        "changelog", "changelog__service", "changelog__service__domain"
    )
    return retrospectives.filter(status=status) if status else retrospectives


def group_get(*, name: str) -> Group | None:
    return Group.objects.filter(name=name).first()
