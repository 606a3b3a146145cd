from enum import StrEnum


class PackError(StrEnum):
    PACK_NOT_FOUND = "pack_not_found"
    PACK_NOT_READY = "pack_not_ready"
    INVALID_PERIOD = "invalid_period"
    PERIOD_TOO_LONG = "period_too_long"
    PERIOD_BEFORE_RECORDS = "period_before_records"
