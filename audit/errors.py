from enum import StrEnum


class AuditError(StrEnum):
    NOT_AN_AUDITOR = "not_an_auditor"
    NO_CHECKPOINT = "no_checkpoint"
    EVENT_NOT_FOUND = "event_not_found"
    EVENT_NOT_SEQUENCED = "event_not_sequenced"
    TREE_SIZE_UNKNOWN = "tree_size_unknown"
    TREE_SIZE_TOO_SMALL = "tree_size_too_small"
    INVALID_SIZES = "invalid_sizes"
    LOG_INCONSISTENT = "log_inconsistent"
