"""The gate's decision: a pure function from a snapshot of facts to allow or deny with reasons.

No Django here. Selectors gather the facts (in as few queries as they can); this module only
decides, so the rules read in one place and are table-tested without a database.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from approvals.rules import ApprovalState
from changelogs.authors import RevisionAuthors
from changelogs.lifecycle import CLOSED
from changelogs.policy import Finding, PolicyRules
from incidents.rules import BlockingIncident, blocking_incidents


class ReasonCode(StrEnum):
    NO_CHANGELOG = "no_changelog"
    CHANGELOG_NOT_SUBMITTED = "changelog_not_submitted"
    CHANGELOG_CLOSED = "changelog_closed"
    CHANGELOG_REJECTED = "changelog_rejected"
    APPROVALS_MISSING = "approvals_missing"
    APPROVAL_STALE = "approval_stale"
    APPROVAL_EXPIRED = "approval_expired"
    APPROVAL_SELF_GIVEN = "approval_self_given"
    APPROVAL_WITHOUT_AUTHORITY = "approval_without_authority"
    APPROVAL_AUTHORITY_SELF_GRANTED = "approval_authority_self_granted"
    APPROVAL_UNSIGNED = "approval_unsigned"
    RETROSPECTIVE_OVERDUE = "retrospective_overdue"
    FREEZE_ACTIVE = "freeze_active"
    COMMIT_AUTHORS_UNVERIFIED = "commit_authors_unverified"
    OUTSIDE_PLANNED_WINDOW = "outside_planned_window"
    INCIDENT_OPEN = "incident_open"
    AUDIT_LOG_INCONSISTENT = "audit_log_inconsistent"
    WITNESS_QUORUM_MISSING = "witness_quorum_missing"
    ALLOWED = "allowed"


# Readiness findings are passed through with their own codes (evidence_missing, …).
_NOT_COUNTED_REASONS = {
    "stale_revision": (ReasonCode.APPROVAL_STALE, "An approval was given to earlier content; it no longer counts."),
    "expired": (ReasonCode.APPROVAL_EXPIRED, "An approval has expired."),
    "self_approval": (ReasonCode.APPROVAL_SELF_GIVEN, "An approval was given by the change's own requester."),
    "evidence_uploader": (
        ReasonCode.APPROVAL_SELF_GIVEN,
        "An approval was given by someone who uploaded its evidence.",
    ),
    "commit_author": (ReasonCode.APPROVAL_SELF_GIVEN, "An approval was given by a commit author of the change."),
    "no_authority": (ReasonCode.APPROVAL_WITHOUT_AUTHORITY, "An approver no longer holds authority for the domain."),
    "unsigned": (
        ReasonCode.APPROVAL_UNSIGNED,
        "An approval is not signed with its approver's passkey, as the policy requires for this risk tier.",
    ),
    "self_granted_authority": (
        ReasonCode.APPROVAL_AUTHORITY_SELF_GRANTED,
        "An approver relies on an authority they asked for or confirmed themselves; it does not count.",
    ),
}


@dataclass(frozen=True)
class Reason:
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class FreezeFact:
    id: int
    scope: str  # "global" or the domain slug
    reason: str
    overridden: bool  # an approved override covers this changelog


@dataclass(frozen=True)
class PlannedWindowFact:
    """When the change is planned to go out, how late the policy lets it still go, and when
    the gate was asked."""

    start: datetime
    end: datetime
    grace_minutes: int  # the policy's planned_window_grace_minutes
    checked_at: datetime

    @property
    def latest(self) -> datetime:
        # A window stored before the API refused times past 2999 may end too near the calendar's
        # end to add the grace: it then lasts to the end of the calendar, as it asked.
        calendar_end = datetime.max.replace(tzinfo=self.end.tzinfo)
        grace = timedelta(minutes=self.grace_minutes)
        return calendar_end if self.end > calendar_end - grace else self.end + grace


@dataclass(frozen=True)
class GateFacts:
    """Everything the decision depends on, read at one moment."""

    changelog_found: bool
    changelog_status: str = ""
    changelog_kind: str = ""
    revision_status: str = ""  # of the revision carrying the digest
    findings: Sequence[tuple[str, str]] = ()  # readiness (code, message)
    approval_status: str = ""  # pending / approved / rejected
    one_independent_approval: bool = False
    approvals_missing: Sequence[str] = ()
    not_counted: Sequence[str] = ()  # NotCounted codes of approvals that do not count
    overdue_retrospectives: int = 0  # of the same service
    active_freezes: Sequence[FreezeFact] = field(default_factory=tuple)
    # The policy wants the commit authors read from the source host for this risk tier, and
    # they have not been (completely) read yet.
    commit_authors_unverified: bool = False
    planned_window: PlannedWindowFact | None = None  # of the revision carrying the digest
    # Unresolved incidents of the service's domain at or above the domain's severity
    # (incidents.rules.blocking_incidents), each answered or not by this change.
    open_incidents: Sequence[BlockingIncident] = ()
    # The audit trail cannot be vouched for: an open audit alarm, or too few fresh witness
    # cosignatures (audit/alarms.py, audit/witnessing.py). Nothing is allowed without a trail.
    audit_log_inconsistent: bool = False
    witness_quorum_missing: bool = False


def facts_of_revision(
    *,
    content: Mapping[str, Any],
    changelog_status: str,
    changelog_kind: str,
    revision_status: str,
    findings: Sequence[Finding],
    state: ApprovalState | None,
    overdue: int,
    freezes: tuple[FreezeFact, ...],
    rules: PolicyRules,
    authors: RevisionAuthors,
    now: datetime,
    unresolved_incidents: Iterable[tuple[str, str]],
    incident_min_severity: str | None,
) -> GateFacts:
    """The facts of a found revision, however they were read (releasegate.gate's two backends
    hand the same values): which incidents a hotfix answers, whether the policy wants the commit
    authors read, the planned window with the policy's grace."""
    window = content["planned_window"]
    hotfix = content.get("hotfix")
    return GateFacts(
        open_incidents=blocking_incidents(
            incidents=unresolved_incidents,
            min_severity=incident_min_severity,
            changelog_kind=changelog_kind,
            incident_reference=hotfix.get("incident_reference", "") if isinstance(hotfix, dict) else "",
        ),
        commit_authors_unverified=rules.requires_verified_authors(content["risk_tier"]) and not authors.verified,
        changelog_found=True,
        changelog_status=changelog_status,
        changelog_kind=changelog_kind,
        revision_status=revision_status,
        findings=tuple((f.code.value, f.message) for f in findings),
        approval_status=state.status.value if state else "",
        one_independent_approval=bool(state and state.one_independent_approval),
        approvals_missing=state.missing if state else (),
        not_counted=tuple(state.not_counted.values()) if state else (),
        overdue_retrospectives=overdue,
        active_freezes=freezes,
        planned_window=PlannedWindowFact(
            start=datetime.fromisoformat(window["start"]),
            end=datetime.fromisoformat(window["end"]),
            grace_minutes=rules.planned_window_grace_minutes,
            checked_at=now,
        ),
    )


@dataclass(frozen=True)
class GateDecision:
    allow: bool
    reasons: tuple[Reason, ...]

    @property
    def outcome(self) -> str:
        return "allow" if self.allow else "deny"


def _trail_reasons(facts: GateFacts) -> list[Reason]:
    reasons = []
    if facts.audit_log_inconsistent:
        reasons.append(
            Reason(
                ReasonCode.AUDIT_LOG_INCONSISTENT,
                "The audit log does not match what was signed; an operator must resolve the audit alarm.",
            )
        )
    if facts.witness_quorum_missing:
        reasons.append(
            Reason(ReasonCode.WITNESS_QUORUM_MISSING, "Too few witnesses have recently cosigned the audit log.")
        )
    return reasons


def evaluate(facts: GateFacts) -> GateDecision:
    reasons: list[Reason] = _trail_reasons(facts)
    if not facts.changelog_found:
        return GateDecision(
            False,
            (
                *reasons,
                Reason(ReasonCode.NO_CHANGELOG, "No changelog of this service carries this artifact digest."),
            ),
        )
    if facts.revision_status != "submitted":
        reasons.append(
            Reason(
                ReasonCode.CHANGELOG_NOT_SUBMITTED,
                f"The changelog revision with this digest is {facts.revision_status or 'not submitted'}.",
            )
        )
    if facts.changelog_status in CLOSED:
        reasons.append(
            Reason(ReasonCode.CHANGELOG_CLOSED, f"The changelog is {facts.changelog_status}; a new one is needed.")
        )
    reasons += [Reason(code, message) for code, message in facts.findings]
    reasons += _approval_reasons(facts)
    if facts.commit_authors_unverified:
        reasons.append(
            Reason(
                ReasonCode.COMMIT_AUTHORS_UNVERIFIED,
                "The policy requires the commit authors read from GitHub for this risk tier; they have not been yet.",
            )
        )
    if facts.overdue_retrospectives:
        reasons.append(
            Reason(
                ReasonCode.RETROSPECTIVE_OVERDUE,
                f"{facts.overdue_retrospectives} hotfix retrospective(s) of this service are overdue.",
            )
        )
    if facts.planned_window is not None:
        reasons += _window_reasons(facts.planned_window)
    for incident in facts.open_incidents:
        if not incident.answered:
            reasons.append(
                Reason(
                    ReasonCode.INCIDENT_OPEN,
                    f"Incident {incident.reference} ({incident.severity}) is open in this domain: only a hotfix "
                    "referencing it may go out until it is resolved.",
                )
            )
    for freeze in facts.active_freezes:
        if not freeze.overridden:
            where = "everywhere" if freeze.scope == "global" else f"for {freeze.scope}"
            reasons.append(Reason(ReasonCode.FREEZE_ACTIVE, f"A change freeze is active {where}: {freeze.reason}"))
    if reasons:
        return GateDecision(False, tuple(reasons))
    return GateDecision(True, (Reason(ReasonCode.ALLOWED, "Every check passed."),))


def _time(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _window_reasons(window: PlannedWindowFact) -> list[Reason]:
    """A change goes out in the window it was planned (and approved) for: not before it starts,
    and not after it ends plus the lateness the policy allows."""
    planned = f"{_time(window.start)} to {_time(window.end)}"
    if window.checked_at < window.start:
        return [
            Reason(
                ReasonCode.OUTSIDE_PLANNED_WINDOW,
                f"The change is planned for {planned}; it is {_time(window.checked_at)}, before its window.",
            )
        ]
    if window.checked_at > window.latest:
        late = f" (and {window.grace_minutes} minutes late allowed)" if window.grace_minutes else ""
        return [
            Reason(
                ReasonCode.OUTSIDE_PLANNED_WINDOW,
                f"The change was planned for {planned}{late}; it is {_time(window.checked_at)}, after its window: "
                "plan a new window (edit the changelog) and have it approved again.",
            )
        ]
    return []


def _approval_reasons(facts: GateFacts) -> list[Reason]:
    if facts.approval_status == "rejected":
        return [Reason(ReasonCode.CHANGELOG_REJECTED, "A signing authority rejected this revision.")]
    if facts.approval_status == "approved":
        return []
    if facts.changelog_kind == "hotfix" and facts.one_independent_approval:
        return []  # the hotfix path: the rest is owed by its retrospective
    reasons = [
        Reason(
            ReasonCode.APPROVALS_MISSING,
            f"Approvals missing: {', '.join(facts.approvals_missing) or 'sign_off'}.",
        )
    ]
    seen: set[str] = set()
    for code in facts.not_counted:
        reason = _NOT_COUNTED_REASONS.get(code)
        if reason and reason[0] not in seen:
            seen.add(reason[0])
            reasons.append(Reason(*reason))
    return reasons
