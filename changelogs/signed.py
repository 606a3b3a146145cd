"""The hash that approvals sign: a changelog's content with its service, kind and evidence, in
canonical JSON. Pure (no Django, no REST framework), so the services that freeze a revision
depend on it alone, not on the API's content schema (changelogs.content)."""

from typing import Any

from tlog.canonical import canonical_json, sha256_hex

CONTENT_FORMAT = "releasegate/changelog/v1"


def content_hash(*, service: str, kind: str, content: dict[str, Any], evidence: list[dict[str, Any]]) -> str:
    """SHA-256 of the canonical JSON of everything an approver signs: which service, which
    kind, the content, and the evidence by hash."""
    document = {
        "format": CONTENT_FORMAT,
        "service": service,
        "kind": kind,
        "content": content,
        "evidence": sorted(evidence, key=lambda item: (item["sha256"], item.get("kind", ""))),
    }
    return sha256_hex(canonical_json(document))
