"""Time-ordered UUIDs (version 7, RFC 9562). Pure: no Django.

For rows written all day long and kept for years, such as gate decisions: a random (version 4)
key lands anywhere in the primary key's index, and in the audit trail's index of targets, so
that every insert touches a page no recent insert has touched (read from disk once the index
outgrows memory, and written whole to the WAL after each checkpoint). Keys that grow with time
all go to the right-hand end of the index. The id shows when the row was made, which the row
says anyway.
"""

import os
import time
import uuid

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62


def uuid7(*, now_ns: int | None = None) -> uuid.UUID:
    """48 bits of Unix time in milliseconds, then the version, 74 random bits and the variant."""
    millis = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    random = int.from_bytes(os.urandom(10), "big")
    rand_a = random >> 68  # 12 bits
    rand_b = random & ((1 << 62) - 1)  # 62 bits
    return uuid.UUID(int=(millis & ((1 << 48) - 1)) << 80 | _VERSION | rand_a << 64 | _VARIANT | rand_b)
