from enum import StrEnum


class PackAction(StrEnum):
    """Audit action tags for evidence packs, shaped ``subject:action``."""

    PACK_REQUESTED = "pack:requested"
    PACK_BUILT = "pack:built"
