"""What changed between two revisions of a changelog, field by field. Pure: no Django.

An approver who opened revision 1 and is told it is now revision 2 must see exactly what
differs before deciding again: the digest, each deploy step, each data change, the evidence
added or taken off. Content is compared as flattened paths (``deploy_steps.2.command``) so
that nothing the content can hold escapes the comparison.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldChange:
    path: str  # e.g. "artifact.digest", "deploy_steps.2.command" (lists count from 1)
    before: str  # "" when the field did not exist
    after: str  # "" when it no longer exists


@dataclass(frozen=True)
class EvidenceItem:
    sha256: str
    kind: str
    file_name: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.file_name} (sha256 {self.sha256[:12]}…)"


@dataclass(frozen=True)
class RevisionChanges:
    content: tuple[FieldChange, ...]
    evidence_added: tuple[EvidenceItem, ...]
    evidence_removed: tuple[EvidenceItem, ...]

    def __bool__(self) -> bool:
        return bool(self.content or self.evidence_added or self.evidence_removed)


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, Mapping):
        flat: dict[str, str] = {}
        for key in sorted(value):
            flat.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list):
        flat = {}
        for index, item in enumerate(value, start=1):
            flat.update(_flatten(item, f"{prefix}.{index}"))
        return flat or {prefix: "(none)"}
    if value is None:
        return {prefix: "(none)"}
    if isinstance(value, bool):
        return {prefix: "yes" if value else "no"}
    return {prefix: str(value)}


def revision_changes(
    *,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    evidence_before: Iterable[EvidenceItem],
    evidence_after: Iterable[EvidenceItem],
) -> RevisionChanges:
    old, new = _flatten(before), _flatten(after)
    content = tuple(
        FieldChange(path=path, before=old.get(path, ""), after=new.get(path, ""))
        for path in sorted(set(old) | set(new), key=_path_order)
        if old.get(path) != new.get(path)
    )
    old_evidence = {item.sha256: item for item in evidence_before}
    new_evidence = {item.sha256: item for item in evidence_after}
    return RevisionChanges(
        content=content,
        evidence_added=tuple(new_evidence[sha] for sha in sorted(set(new_evidence) - set(old_evidence))),
        evidence_removed=tuple(old_evidence[sha] for sha in sorted(set(old_evidence) - set(new_evidence))),
    )


def _path_order(path: str) -> tuple[tuple[int, int | str], ...]:
    """deploy_steps.2 before deploy_steps.10."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in path.split("."))
