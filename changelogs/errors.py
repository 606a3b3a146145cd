from enum import StrEnum


class ChangelogError(StrEnum):
    CHANGELOG_NOT_FOUND = "changelog_not_found"
    REVISION_NOT_FOUND = "revision_not_found"
    CHANGELOG_READ_ONLY = "changelog_read_only"
    CHANGELOG_NOT_DRAFT = "changelog_not_draft"
    CHANGELOG_CLOSED = "changelog_closed"
    STATUS_CHANGE_NOT_ALLOWED = "status_change_not_allowed"
    UNKNOWN_SERVICE = "unknown_service"
    INVALID_KIND = "invalid_kind"
    EVIDENCE_NOT_FOUND = "evidence_not_found"
    EVIDENCE_TOO_LARGE = "evidence_too_large"
    EVIDENCE_KIND_MISMATCH = "evidence_kind_mismatch"
    EVIDENCE_FORMAT_UNKNOWN = "evidence_format_unknown"
    EVIDENCE_FORMAT_NOT_DETECTED = "evidence_format_not_detected"
    EVIDENCE_CORRUPTED = "evidence_corrupted"
    INVALID_FILE_NAME = "invalid_file_name"
    INVALID_POLICY = "invalid_policy"
    EVIDENCE_ENVIRONMENT_REQUIRED = "evidence_environment_required"
