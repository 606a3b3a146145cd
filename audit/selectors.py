"""Reads of the audit trail: events, checkpoints and proofs."""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet

from audit.errors import AuditError
from audit.events import EVENT_COLUMNS, event_bytes
from audit.models import AuditEvent, AuditLeaf, AuditNode, Checkpoint
from audit.signing import checkpoint_signer
from core.actors import ActingUser
from core.errors import Conflict, IntegrityFailure, InvalidInput, NotFound, PermissionDenied
from core.queries import narrowed
from tlog.merkle import (
    Coord,
    ProofError,
    consistency_proof,
    inclusion_proof,
    inclusion_proof_nodes,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from tlog.note import Checkpoint as CheckpointNote
from tlog.note import NoteError

logger = logging.getLogger(__name__)

VIEW_AUDIT = "audit.view_auditevent"


def auditor_require(*, user: ActingUser) -> None:
    """The audit trail is for auditors (the Auditors group) and administrators."""
    if not (user.is_superuser or user.has_perm(VIEW_AUDIT)):
        raise PermissionDenied(AuditError.NOT_AN_AUDITOR, "Only auditors and administrators read the audit trail.")


def checkpoint_latest() -> Checkpoint:
    checkpoint: Checkpoint | None = Checkpoint.objects.order_by("-tree_size").first()
    if checkpoint is None:
        raise NotFound(AuditError.NO_CHECKPOINT, "The log has no checkpoint yet.")
    return checkpoint


def checkpoint_at(*, tree_size: int) -> Checkpoint:
    checkpoint: Checkpoint | None = Checkpoint.objects.filter(tree_size=tree_size).first()
    if checkpoint is None:
        raise NotFound(AuditError.TREE_SIZE_UNKNOWN, f"No checkpoint was signed at tree size {tree_size}.")
    return checkpoint


def event_list(
    *,
    after: datetime | None = None,
    before: datetime | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
) -> QuerySet[AuditEvent]:
    return narrowed(
        AuditEvent.objects.select_related("leaf"),
        created_at__gte=after,
        created_at__lt=before,
        target_type=target_type,
        target_id=target_id,
        actor=actor,
        action=action,
    )


def events_of_target(*, target_type: str, target_ids: Sequence[str]) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.select_related("leaf").filter(target_type=target_type, target_id__in=target_ids)


def event_canonical_bytes(event: AuditEvent) -> bytes:
    return event_bytes(tuple(getattr(event, column) for column in EVENT_COLUMNS))


def fetch_nodes(coords: Sequence[Coord]) -> dict[Coord, bytes]:
    """Every hash the proofs need, in two indexed queries (leaves, then interior nodes)."""
    leaf_indexes = [index for level, index in coords if level == 0]
    by_level: dict[int, list[int]] = {}
    for level, index in coords:
        if level > 0:
            by_level.setdefault(level, []).append(index)
    found: dict[Coord, bytes] = {}
    if leaf_indexes:
        for index, digest in AuditLeaf.objects.filter(leaf_index__in=leaf_indexes).values_list(
            "leaf_index", "leaf_hash"
        ):
            found[(0, index)] = bytes(digest)
    if by_level:
        wanted = Q()
        for level, indexes in by_level.items():
            wanted |= Q(level=level, index__in=indexes)
        for level, index, digest in AuditNode.objects.filter(wanted).values_list("level", "index", "hash"):
            found[(level, index)] = bytes(digest)
    return found


_fetch_nodes = fetch_nodes


def _proof(make: Any, *args: int, fetch: Any = None) -> list[bytes]:
    """A proof from the stored nodes; a node missing from the store is an inconsistent log."""
    try:
        proof: list[bytes] = make(*args, fetch or fetch_nodes)
    except ValueError as error:
        raise _inconsistent(str(error)) from error
    return proof


def _inconsistent(what: str) -> IntegrityFailure:
    logger.error("audit log inconsistent: %s; run manage.py audit_verify", what)
    return IntegrityFailure(
        AuditError.LOG_INCONSISTENT,
        f"The stored audit log does not match its signed checkpoint ({what}); nothing is served. "
        "An operator should run audit_verify.",
    )


def signed_root(checkpoint: Checkpoint) -> bytes:
    """The root hash as the checkpoint's signature vouches for it, not as a column says."""
    try:
        body = CheckpointNote.parse(checkpoint_signer().verifier().open(checkpoint.signed_note))
    except NoteError as error:
        raise _inconsistent(f"the checkpoint at size {checkpoint.tree_size} does not verify: {error}") from error
    if body.size != checkpoint.tree_size or body.origin != settings.AUDIT_LOG_ORIGIN:
        raise _inconsistent(f"the checkpoint at size {checkpoint.tree_size} signs another size or origin")
    return body.root_hash


def inclusion_proofs(*, leaf_hashes: Mapping[int, bytes], checkpoint: Checkpoint) -> dict[int, list[bytes]]:
    """Inclusion proofs of many leaves (leaf index → the hash of the event as it will be
    shown) against one signed checkpoint, with one fetch for all. Each is checked against the
    signed root before it is handed out: a proof that would not verify is never served."""
    tree_size, root = checkpoint.tree_size, signed_root(checkpoint)
    wanted = {
        coord for index in leaf_hashes for element in inclusion_proof_nodes(index, tree_size) for coord in element
    }
    found = fetch_nodes(sorted(wanted))
    proofs = {index: _proof(inclusion_proof, index, tree_size, fetch=lambda _coords: found) for index in leaf_hashes}
    for index, proof in proofs.items():
        _inclusion_checked(leaf_hashes[index], index, tree_size, proof, root)
    return proofs


def _inclusion_checked(hashed: bytes, index: int, tree_size: int, proof: list[bytes], root: bytes) -> None:
    try:
        verify_inclusion(hashed, index, tree_size, proof, root)
    except ProofError as error:
        raise _inconsistent(f"leaf {index} does not prove into the tree of size {tree_size}: {error}") from error


@dataclass(frozen=True)
class InclusionProof:
    event: AuditEvent
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    proof: list[bytes]
    checkpoint: Checkpoint


def inclusion_proof_get(*, event_id: int, tree_size: int | None = None) -> InclusionProof:
    """The proof that the event is in the log at a signed tree size (the latest by default)."""
    event = AuditEvent.objects.select_related("leaf").filter(pk=event_id).first()
    if event is None:
        raise NotFound(AuditError.EVENT_NOT_FOUND, "No such audit event.")
    leaf = getattr(event, "leaf", None)
    if leaf is None:
        raise Conflict(AuditError.EVENT_NOT_SEQUENCED, "The event is not in the log yet; try again in a moment.")
    checkpoint = checkpoint_latest() if tree_size is None else checkpoint_at(tree_size=tree_size)
    if leaf.leaf_index >= checkpoint.tree_size:
        raise InvalidInput(
            AuditError.TREE_SIZE_TOO_SMALL,
            f"The event is leaf {leaf.leaf_index}; the tree of size {checkpoint.tree_size} does not contain it.",
        )
    proof = _proof(inclusion_proof, leaf.leaf_index, checkpoint.tree_size)
    hashed = leaf_hash(event_canonical_bytes(event))
    if hashed != bytes(leaf.leaf_hash):
        raise _inconsistent(f"event {event.pk} no longer matches leaf {leaf.leaf_index}")
    _inclusion_checked(hashed, leaf.leaf_index, checkpoint.tree_size, proof, signed_root(checkpoint))
    return InclusionProof(
        event=event,
        leaf_index=leaf.leaf_index,
        tree_size=checkpoint.tree_size,
        leaf_hash=hashed,
        proof=proof,
        checkpoint=checkpoint,
    )


def consistency_proof_get(*, first_size: int, second_size: int) -> list[bytes]:
    """The proof that the tree at ``second_size`` extends the one at ``first_size``; both must
    be signed checkpoints."""
    if not 0 < first_size <= second_size:
        raise InvalidInput(AuditError.INVALID_SIZES, "Sizes must satisfy 0 < first <= second.")
    first = signed_root(checkpoint_at(tree_size=first_size))
    second = signed_root(checkpoint_at(tree_size=second_size))
    proof = _proof(consistency_proof, first_size, second_size)
    try:
        verify_consistency(first_size, second_size, proof, first, second)
    except ProofError as error:
        raise _inconsistent(
            f"the tree of size {second_size} does not extend that of size {first_size}: {error}"
        ) from error
    return proof
