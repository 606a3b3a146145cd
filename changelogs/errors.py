from enum import StrEnum


class ChangelogError(StrEnum):
    CHANGELOG_NOT_FOUND = "changelog_not_found"
    REVISION_NOT_FOUND = "revision_not_found"
    CHANGELOG_READ_ONLY = "changelog_read_only"
    CHANGELOG_NOT_DRAFT = "changelog_not_draft"
    CHANGELOG_CLOSED = "changelog_closed"
    UNKNOWN_SERVICE = "unknown_service"
    INVALID_KIND = "invalid_kind"
