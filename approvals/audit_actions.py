from enum import StrEnum


class ApprovalAction(StrEnum):
    """Audit action tags written by this app, shaped ``subject:action``."""

    APPROVAL_APPROVED = "approval:approved"
    APPROVAL_REJECTED = "approval:rejected"
    APPROVAL_REFUSED = "approval:refused"
    AUTHORITY_REQUESTED = "authority:requested"
    AUTHORITY_GRANTED = "authority:granted"
    AUTHORITY_REFUSED = "authority:refused"
    AUTHORITY_REVOKED = "authority:revoked"
    AUTHORITY_ATTEMPT_REFUSED = "authority:attempt_refused"
    RETROSPECTIVE_OPENED = "retrospective:opened"
    RETROSPECTIVE_COMPLETED = "retrospective:completed"
    RETROSPECTIVE_OVERDUE = "retrospective:overdue"
    RETROSPECTIVE_ESCALATED = "retrospective:escalated"
    RETROSPECTIVE_REVIEWED = "retrospective:reviewed"
    # The cause recorded with the changelog's status change to closed.
    CHANGELOG_CLOSED = "changelog:closed"
