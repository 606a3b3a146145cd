"""A changelog's lifecycle: which status may follow which. Pure: no Django.

One table, read by the one service that changes a changelog's status
(``changelogs.services.changelog_status_change``) and by the gate's rules (which statuses are
closed). Status is what the approvals and deployments have made of the change so far; the
revisions keep what it says.
"""

from enum import StrEnum


class Status(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    DEPLOYED = "deployed"
    ROLLED_BACK = "rolled_back"
    # The record is finished: nothing more is owed (a hotfix's tests, its retrospective's
    # approvals and post-implementation review: approvals.services.changelog_close).
    CLOSED = "closed"


# Once deployed or rolled back a changelog is history: a new deployment needs a new changelog.
CLOSED = frozenset({Status.DEPLOYED, Status.ROLLED_BACK, Status.CLOSED})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    # submitted: the draft is frozen and hashed
    Status.DRAFT: frozenset({Status.SUBMITTED}),
    # decided by approvals; draft again when edited (a new revision)
    Status.SUBMITTED: frozenset({Status.APPROVED, Status.REJECTED, Status.DRAFT}),
    # a later rejection of the same revision still blocks it; a covered deployment closes it
    Status.APPROVED: frozenset({Status.SUBMITTED, Status.REJECTED, Status.DRAFT, Status.DEPLOYED, Status.ROLLED_BACK}),
    Status.REJECTED: frozenset({Status.DRAFT}),
    Status.DEPLOYED: frozenset({Status.ROLLED_BACK, Status.CLOSED}),
    Status.ROLLED_BACK: frozenset({Status.CLOSED}),
    Status.CLOSED: frozenset(),
}


def may_change(old: str, new: str) -> bool:
    return Status(new) in TRANSITIONS[Status(old)]
