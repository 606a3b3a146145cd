from enum import StrEnum


class ChangelogAction(StrEnum):
    """Audit action tags written by this app, shaped ``subject:action``."""

    CHANGELOG_CREATED = "changelog:created"
    CHANGELOG_EDITED = "changelog:edited"
    CHANGELOG_REVISED = "changelog:revised"
    CHANGELOG_SUBMITTED = "changelog:submitted"
    CHANGELOG_STATUS_CHANGED = "changelog:status_changed"
    COMMIT_AUTHORS_READ = "changelog:commit_authors_read"
    EVIDENCE_ADDED = "evidence:added"
    EVIDENCE_DETACHED = "evidence:detached"
    POLICY_CREATED = "policy:created"
    DOMAIN_SAVED = "domain:saved"
    SERVICE_SAVED = "service:saved"
    JOURNEY_SAVED = "journey:saved"
    DOMAIN_DELETED = "domain:deleted"
    SERVICE_DELETED = "service:deleted"
    JOURNEY_DELETED = "journey:deleted"
