"""Which approvals count, and whether they are enough. Pure: no Django.

An approval counts only when it is of the current submitted revision (same content hash), not
expired, by someone who holds the authority now through grants they neither asked for nor
confirmed themselves, who is not the requester, did not upload any of the revision's evidence,
is not a commit author (declared by the pipeline or read from the source host:
changelogs/authors.py), and is not already counted. The
tier's number of sign-offs is needed, plus a security sign-off when the change declares
security impact and a data sign-off when it changes data: each by a different person, so four
eyes stay four eyes. Any rejection of the current revision blocks it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from changelogs.authors import declared_identities, identities


class Authority(StrEnum):
    SIGN_OFF = "sign_off"
    SECURITY_SIGN_OFF = "security_sign_off"
    DATA_SIGN_OFF = "data_sign_off"


class NotCounted(StrEnum):
    SELF_APPROVAL = "self_approval"
    EVIDENCE_UPLOADER = "evidence_uploader"
    COMMIT_AUTHOR = "commit_author"
    NO_AUTHORITY = "no_authority"
    SELF_GRANTED_AUTHORITY = "self_granted_authority"
    DUPLICATE_APPROVER = "duplicate_approver"
    EXPIRED = "expired"
    STALE_REVISION = "stale_revision"
    UNSIGNED = "unsigned"


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class ApprovalFact:
    id: str
    approver_id: int
    approver_username: str
    approver_email: str
    decision: str  # "approved" or "rejected"
    revision_number: int
    content_hash: str
    decided_at: datetime
    expires_at: datetime
    authorities_now: frozenset[str]
    # Held only through a grant the approver asked for or confirmed: never counts.
    authorities_self_granted: frozenset[str] = frozenset()
    # Signed with the approver's confirmed passkey (approvals.ApprovalSignature).
    signed: bool = False


@dataclass(frozen=True)
class ApprovalContext:
    revision_number: int
    content_hash: str
    risk_tier: str
    security_impact: bool
    has_data_changes: bool
    requester_ids: frozenset[int]
    evidence_uploader_ids: frozenset[int]
    commit_authors: frozenset[str]
    required_by_tier: Mapping[str, int]
    now: datetime
    # The policy wants approvals signed with the approver's passkey for this risk tier.
    signatures_required: bool = False


@dataclass(frozen=True)
class ApprovalState:
    status: ApprovalStatus
    required: tuple[str, ...]  # the roles needed, e.g. ("sign_off", "sign_off", "security_sign_off")
    counted: tuple[str, ...]  # ids of the approvals that count
    missing: tuple[str, ...]  # roles no counted approval fills yet
    not_counted: Mapping[str, str] = field(default_factory=dict)  # approval id -> NotCounted code
    rejected_by: tuple[str, ...] = ()
    independent_sign_offs: int = 0  # approvals that could count, by people holding sign_off

    @property
    def one_independent_approval(self) -> bool:
        """What a hotfix needs before deploying: one sign-off that counts, and no rejection."""
        return self.status != ApprovalStatus.REJECTED and self.independent_sign_offs > 0


def approval_context(
    *,
    revision_number: int,
    content_hash: str,
    content: Mapping[str, Any],
    requester_ids: frozenset[int],
    evidence_uploader_ids: frozenset[int],
    required_by_tier: Mapping[str, int],
    now: datetime,
    verified_authors: frozenset[str] = frozenset(),
    signed_tiers: tuple[str, ...] = (),
) -> ApprovalContext:
    """The context in which a revision's approvals are counted; its content says the risk tier,
    whether security or data sign-offs are needed, and who the pipeline declares as commit
    authors; ``verified_authors`` are those read from the source host (lower-case logins and
    e-mail addresses). Both are commit authors."""
    return ApprovalContext(
        revision_number=revision_number,
        content_hash=content_hash,
        risk_tier=content["risk_tier"],
        security_impact=bool(content["security_impact"]["declared"]),
        has_data_changes=bool(content["data_changes"]),
        requester_ids=requester_ids,
        evidence_uploader_ids=evidence_uploader_ids,
        commit_authors=declared_identities(content) | verified_authors,
        required_by_tier=required_by_tier,
        now=now,
        signatures_required=content["risk_tier"] in signed_tiers,
    )


def required_roles(context: ApprovalContext) -> tuple[str, ...]:
    roles = [Authority.SIGN_OFF.value] * context.required_by_tier[context.risk_tier]
    if context.security_impact:
        roles.append(Authority.SECURITY_SIGN_OFF.value)
    if context.has_data_changes:
        roles.append(Authority.DATA_SIGN_OFF.value)
    return tuple(roles)


def why_not_counted(context: ApprovalContext, approval: ApprovalFact) -> NotCounted | None:
    if approval.revision_number != context.revision_number or approval.content_hash != context.content_hash:
        return NotCounted.STALE_REVISION
    if approval.approver_id in context.requester_ids:
        return NotCounted.SELF_APPROVAL
    if approval.approver_id in context.evidence_uploader_ids:
        return NotCounted.EVIDENCE_UPLOADER
    if identities(name_or_login=approval.approver_username, email=approval.approver_email) & context.commit_authors:
        return NotCounted.COMMIT_AUTHOR
    if approval.expires_at <= context.now:
        return NotCounted.EXPIRED
    if not approval.authorities_now & {a.value for a in Authority}:
        if approval.authorities_self_granted & {a.value for a in Authority}:
            return NotCounted.SELF_GRANTED_AUTHORITY
        return NotCounted.NO_AUTHORITY
    if context.signatures_required and not approval.signed:
        return NotCounted.UNSIGNED
    return None


def approval_state(context: ApprovalContext, approvals: Sequence[ApprovalFact]) -> ApprovalState:
    required = required_roles(context)
    rejected_by = tuple(
        approval.id
        for approval in approvals
        if approval.decision == "rejected"
        and approval.revision_number == context.revision_number
        and approval.content_hash == context.content_hash
    )
    not_counted: dict[str, str] = {}
    eligible: list[ApprovalFact] = []
    seen_people: set[int] = set()
    for approval in sorted(approvals, key=lambda a: a.decided_at):
        if approval.decision != "approved":
            continue
        reason = why_not_counted(context, approval)
        if reason is None and approval.approver_id in seen_people:
            reason = NotCounted.DUPLICATE_APPROVER
        if reason is not None:
            not_counted[approval.id] = reason.value
            continue
        seen_people.add(approval.approver_id)
        eligible.append(approval)
    assignment = _assign(required, eligible)
    counted = tuple(sorted({approval.id for approval in assignment.values()}))
    missing = tuple(role for index, role in enumerate(required) if index not in assignment)
    if rejected_by:
        status = ApprovalStatus.REJECTED
    elif not missing:
        status = ApprovalStatus.APPROVED
    else:
        status = ApprovalStatus.PENDING
    return ApprovalState(
        status=status,
        required=required,
        counted=counted,
        missing=missing,
        not_counted=not_counted,
        rejected_by=rejected_by,
        independent_sign_offs=sum(1 for a in eligible if Authority.SIGN_OFF.value in a.authorities_now),
    )


def _assign(roles: tuple[str, ...], approvals: list[ApprovalFact]) -> dict[int, ApprovalFact]:
    """A largest assignment of distinct approvers to roles (role index -> approval), so that
    one person never fills two roles (Kuhn's augmenting paths; a handful of items)."""
    holder_of: dict[int, int] = {}  # approval index -> role index

    def place(role: int, visited: set[int]) -> bool:
        for index, approval in enumerate(approvals):
            if index in visited or roles[role] not in approval.authorities_now:
                continue
            visited.add(index)
            if index not in holder_of or place(holder_of[index], visited):
                holder_of[index] = role
                return True
        return False

    for role in range(len(roles)):
        place(role, set())
    return {role: approvals[index] for index, role in holder_of.items()}
