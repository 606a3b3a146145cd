from enum import StrEnum


class ApprovalError(StrEnum):
    CHANGELOG_NOT_SUBMITTED = "changelog_not_submitted"
    APPROVER_NOT_A_PERSON = "approver_not_a_person"
    NO_SIGNING_AUTHORITY = "no_signing_authority"
    OWN_CHANGE = "own_change"
    ALREADY_DECIDED = "already_decided"
    REASON_REQUIRED = "reason_required"
    STEP_UP_FAILED = "step_up_failed"
    CONTENT_CHANGED = "content_changed"
    UNKNOWN_AUTHORITY = "unknown_authority"
    GRANTEE_REQUIRED = "grantee_required"
    NOT_AN_ADMINISTRATOR = "not_an_administrator"
    GRANT_TO_SELF = "grant_to_self"
    GRANT_OWN_REQUEST = "grant_own_request"
    GRANT_EXISTS = "grant_exists"
    GRANT_NOT_PENDING = "grant_not_pending"
    GRANT_NOT_ACTIVE = "grant_not_active"
    GROUP_WITHOUT_AUTHORITY = "group_without_authority"
