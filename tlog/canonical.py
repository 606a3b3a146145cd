"""Canonical JSON: the one byte form that every hash in Release Gate is taken over.

Sorted keys, no insignificant whitespace, UTF-8 without escaping non-ASCII, and no NaN or
infinities (they have no JSON form). Pure: no Django here, because the standalone verifier
and the evidence pack reuse it.
"""

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
