"""What an approver's passkey signs: a WebAuthn challenge derived from exactly what was
decided. Pure (no Django): the standalone verifier (tlog/verifier.py) derives the same bytes
on its own, so an auditor sees that a signature covers this changelog, revision, content hash,
decision and reason, and nothing else.

challenge = SHA-256(canonical JSON of the statement), where the statement is
``{"context": "releasegate-approval-v1", "changelog": <uuid>, "revision": <n>,
"content_hash": <64 hex>, "decision": "approved"|"rejected", "reason_sha256": <64 hex>}``,
canonical JSON being keys sorted, no spaces, UTF-8.
"""

import hashlib
import json
from typing import Any

APPROVAL_CONTEXT = "releasegate-approval-v1"


def approval_statement(
    *, changelog_id: str, revision: int, content_hash: str, decision: str, reason: str
) -> dict[str, Any]:
    return {
        "context": APPROVAL_CONTEXT,
        "changelog": str(changelog_id),
        "revision": int(revision),
        "content_hash": content_hash,
        "decision": decision,
        "reason_sha256": hashlib.sha256(reason.encode("utf-8")).hexdigest(),
    }


def approval_challenge(*, changelog_id: str, revision: int, content_hash: str, decision: str, reason: str) -> bytes:
    statement = approval_statement(
        changelog_id=changelog_id, revision=revision, content_hash=content_hash, decision=decision, reason=reason
    )
    encoded = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(encoded).digest()
