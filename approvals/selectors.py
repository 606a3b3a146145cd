"""Reads for approvals: who holds authority, the state of a changelog's approvals, the queue."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Q, QuerySet

from approvals.models import Approval, AuthorityGrant, GrantKind, GrantStatus, Retrospective, RetrospectiveStatus
from approvals.rules import ApprovalFact, ApprovalState, Authority, approval_context, approval_state
from changelogs.models import Changelog, ChangelogRevision, ChangelogStatus, Domain, RevisionStatus
from changelogs.selectors import commit_authors_of, domain_list_with_authority, policy_for, revision_current
from core.actors import ActingUser

AUTHORITY_PERMISSIONS = tuple(authority.value for authority in Authority)


@dataclass(frozen=True)
class AuthorityPath:
    """One way a person holds an authority on a domain: a grant to them, or a grant to a group
    and their membership of it; ``involved`` are the administrators who asked for or confirmed
    any grant on the way (None for grants held before grants needed a second administrator)."""

    user_id: int
    authority: str
    involved: frozenset[int | None]


def _paths(*, domain: Domain, user: ActingUser | None = None) -> list[AuthorityPath]:
    active = AuthorityGrant.objects.filter(status=GrantStatus.ACTIVE)
    grants = active.filter(kind=GrantKind.AUTHORITY, domain=domain).values_list(
        "authority", "user_id", "group_id", "requested_by_id", "decided_by_id"
    )
    memberships = active.filter(kind=GrantKind.MEMBERSHIP).values_list(
        "group_id", "user_id", "requested_by_id", "decided_by_id"
    )
    if user is not None:
        memberships = memberships.filter(user=user)
    members: dict[int, list[tuple[int, frozenset[int | None]]]] = {}
    for group_id, user_id, requested_by, decided_by in memberships:
        members.setdefault(group_id, []).append((user_id, frozenset({requested_by, decided_by})))
    paths = []
    for authority, user_id, group_id, requested_by, decided_by in grants:
        involved = frozenset({requested_by, decided_by})
        if user_id is not None:
            paths.append(AuthorityPath(user_id, authority, involved))
        for member_id, via in members.get(group_id, []) if group_id is not None else []:
            paths.append(AuthorityPath(member_id, authority, involved | via))
    return [path for path in paths if user is None or path.user_id == user.pk]


def _may_hold(user: ActingUser) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.is_active and not user.is_service_account)


def authorities_of(*, user: ActingUser, domain: Domain) -> frozenset[str]:
    """The authorities that count for the user on the domain: held through grants in force,
    directly or through a group, none of which the user asked for or confirmed themselves.
    Being a superuser is not a signing authority."""
    if not _may_hold(user):
        return frozenset()
    return frozenset(path.authority for path in _paths(domain=domain, user=user) if user.pk not in path.involved)


def authorities_self_granted(*, user: ActingUser, domain: Domain) -> frozenset[str]:
    """Authorities the user holds only through a grant they asked for or confirmed: they never
    count (an approval relying on one is ``self_granted_authority``)."""
    if not _may_hold(user):
        return frozenset()
    held = frozenset(path.authority for path in _paths(domain=domain, user=user))
    return held - authorities_of(user=user, domain=domain)


def authority_holders(*, domain: Domain, authority: str = Authority.SIGN_OFF) -> list[Any]:
    """Active people for whom the authority counts on the domain (for notifications)."""
    ids = {
        path.user_id
        for path in _paths(domain=domain)
        if path.authority == authority and path.user_id not in path.involved
    }
    users = get_user_model().objects.filter(pk__in=ids, is_active=True, is_service_account=False).order_by("username")
    return list(users)


def authority_emails(*, domain: Domain) -> list[str]:
    """The addresses to notify the domain's signing authorities at: those who have one, sorted."""
    return sorted(user.email for user in authority_holders(domain=domain) if user.email)


def authority_grants(*, domain: Domain) -> dict[str, dict[str, list[str]]]:
    """Who holds what on the domain, in force: {"users": {username: [authorities]}, "groups": {...}}."""
    matrix: dict[str, dict[str, set[str]]] = {"users": {}, "groups": {}}
    for grant in AuthorityGrant.objects.filter(
        status=GrantStatus.ACTIVE, kind=GrantKind.AUTHORITY, domain=domain
    ).select_related("user", "group"):
        if grant.user is not None:
            matrix["users"].setdefault(grant.user.username, set()).add(grant.authority)
        elif grant.group is not None:
            matrix["groups"].setdefault(grant.group.name, set()).add(grant.authority)
    return {kind: {name: sorted(held) for name, held in sorted(names.items())} for kind, names in matrix.items()}


def grant_list(*, status: str) -> QuerySet[AuthorityGrant]:
    return (
        AuthorityGrant.objects.filter(status=status)
        .select_related("domain", "user", "group", "requested_by", "decided_by")
        .order_by("requested_at")
    )


def approval_list(*, changelog: Changelog) -> QuerySet[Approval]:
    return (
        Approval.objects.filter(changelog=changelog)
        .select_related("approver", "revision", "signature")
        .order_by("decided_at")
    )


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
        verified_authors=commit_authors_of(revision=revision).verified_identities,
        signed_tiers=policy.rules.signed_approvals,
    )
    domain = changelog.service.domain
    held: dict[int, frozenset[str]] = {}
    self_granted: dict[int, frozenset[str]] = {}
    facts = []
    for approval in approval_list(changelog=changelog):
        if approval.approver_id not in held:
            held[approval.approver_id] = authorities_of(user=approval.approver, domain=domain)
            self_granted[approval.approver_id] = authorities_self_granted(user=approval.approver, domain=domain)
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
                authorities_self_granted=self_granted[approval.approver_id],
                signed=hasattr(approval, "signature"),
            )
        )
    return approval_state(context, facts)


def queue_for(*, user: ActingUser) -> QuerySet[Changelog]:
    """Changelogs waiting for the user's sign-off: submitted, in a domain where the user holds
    authority, not the user's own, not yet decided by the user; oldest submission first.
    Hotfixes with an open retrospective stay in the queue until it is complete."""
    domains = domain_list_with_authority(user=user)
    decided = Approval.objects.filter(approver=user).values("revision_id")
    waiting = Q(status=ChangelogStatus.SUBMITTED) | Q(
        retrospective__status__in=[RetrospectiveStatus.OPEN, RetrospectiveStatus.OVERDUE],
        retrospective__approved_at__isnull=True,  # else only its post-implementation review is owed
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
        "changelog", "changelog__service", "changelog__service__domain", "review", "review__written_by"
    )
    return retrospectives.filter(status=status) if status else retrospectives


def group_get(*, name: str) -> Group | None:
    return Group.objects.filter(name=name).first()
