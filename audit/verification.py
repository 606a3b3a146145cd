"""Recompute the whole log from the stored events and check it against every signed
checkpoint. Used by ``manage.py audit_verify``.

What it catches, and where it points:
- an event whose content no longer matches its leaf hash (edited, swapped): that leaf;
- a leaf whose event is gone, or a gap in leaf indices (deleted): that leaf;
- leaves whose events are out of sequencing order (reordered, inserted with renumbering): that leaf;
- an event that was never sequenced although later events were (inserted behind the
  sequencer's back): the position where it would have been;
- a checkpoint whose root no longer matches the recomputed tree, or whose signature or body
  is wrong: the range of leaves it covers beyond the last good checkpoint.

Rows are streamed in large batches and nothing is built per row beyond a tuple.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q

from audit.merkle import Frontier, leaf_hash
from audit.models import AuditEvent, AuditLeaf, Checkpoint
from audit.note import Checkpoint as CheckpointNote
from audit.note import NoteError, NoteVerifier
from audit.sequencer import event_bytes
from audit.signing import checkpoint_signer

_BATCH = 20_000


@dataclass(frozen=True)
class Divergence:
    leaf_index: int
    reason: str
    # False when the evidence only bounds a range (a checkpoint that no longer matches):
    # then leaf_index is where that range starts.
    exact: bool = True


@dataclass
class VerificationReport:
    leaves: int = 0
    checkpoints: int = 0
    divergences: list[Divergence] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.divergences

    @property
    def first(self) -> Divergence | None:
        """The first exactly located divergence; failing that, the start of the first range."""
        exact = [d for d in self.divergences if d.exact]
        candidates = exact or self.divergences
        return min(candidates, key=lambda d: d.leaf_index) if candidates else None


def _leaf_rows() -> Iterator[tuple[Any, ...]]:
    """(leaf_index, leaf_hash, event columns…) ordered by leaf index; event columns are None
    when the event row is missing."""
    sql = (
        "SELECT l.leaf_index, l.leaf_hash, l.event_id, e.id, e.created_at, e.actor, e.actor_id, e.action,"
        " e.target_type, e.target_id, e.data, e.request_id, e.txid"
        " FROM audit_auditleaf l LEFT JOIN audit_auditevent e ON e.id = l.event_id"
        " ORDER BY l.leaf_index"
    )
    # SQLite hands back text where PostgreSQL hands back datetimes; convert as the ORM would.
    converters = connection.ops.get_db_converters(AuditEvent._meta.get_field("created_at").cached_col)
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql)
        while rows := cursor.fetchmany(_BATCH):
            if converters:
                for row in rows:
                    created_at = row[4]
                    for converter in converters:
                        created_at = converter(created_at, None, connection)
                    yield (*row[:4], created_at, *row[5:])
            else:
                yield from rows


def verify_log(*, progress: Callable[[int], None] | None = None) -> VerificationReport:
    report = VerificationReport()
    verifier = checkpoint_signer().verifier()
    checkpoints = list(Checkpoint.objects.order_by("tree_size").values_list("tree_size", "root_hash", "signed_note"))
    report.checkpoints = len(checkpoints)
    next_checkpoint = 0
    last_good_size = 0
    frontier = Frontier(size=0, hashes=[])
    previous_order: tuple[int, int] | None = None
    before_previous: tuple[int, int] | None = None
    for row in _leaf_rows():
        leaf_index, stored_hash, event_id, present_id = row[0], bytes(row[1]), row[2], row[3]
        position = frontier.size
        if leaf_index != position:
            report.divergences.append(
                Divergence(position, f"leaf {position} is missing (the next stored leaf is {leaf_index})")
            )
            break
        if present_id is None:
            report.divergences.append(Divergence(position, f"leaf {position}: its event {event_id} is gone"))
            recomputed = stored_hash
        else:
            event_row = row[3:]
            recomputed = leaf_hash(event_bytes(event_row))
            if recomputed != stored_hash:
                report.divergences.append(
                    Divergence(position, f"leaf {position}: event {event_id} no longer matches its leaf hash")
                )
            order = (event_row[-1] or 0, event_row[0])
            if previous_order is not None and order <= previous_order:
                # One of the two is out of place: the earlier one if dropping it restores the
                # order (something was put in), else this one.
                misplaced = position - 1 if before_previous is None or before_previous < order else position
                report.divergences.append(
                    Divergence(misplaced, f"leaf {misplaced} is out of sequencing order (found at leaf {position})")
                )
            before_previous, previous_order = previous_order, order
        frontier.append(recomputed)
        while next_checkpoint < len(checkpoints) and checkpoints[next_checkpoint][0] == frontier.size:
            problem = _checkpoint_problem(verifier, checkpoints[next_checkpoint], frontier.root())
            if problem:
                report.divergences.append(
                    Divergence(
                        last_good_size,
                        f"{problem}; the divergence is in leaves {last_good_size}..{frontier.size - 1}",
                        exact=False,
                    )
                )
            else:
                last_good_size = frontier.size
            next_checkpoint += 1
        if progress and frontier.size % 100_000 == 0:
            progress(frontier.size)
    report.leaves = frontier.size
    for size, _, _ in checkpoints[next_checkpoint:]:
        report.divergences.append(
            Divergence(frontier.size, f"checkpoint at size {size} signs leaves the log no longer has", exact=False)
        )
    _check_unsequenced(report)
    return report


def _checkpoint_problem(verifier: NoteVerifier, checkpoint: tuple[int, Any, str], root: bytes) -> str | None:
    size, stored_root, signed_note = checkpoint
    try:
        body = CheckpointNote.parse(verifier.open(signed_note))
    except NoteError as error:
        return f"checkpoint at size {size} has a bad signature or body ({error})"
    if body.size != size or body.root_hash != bytes(stored_root) or body.origin != settings.AUDIT_LOG_ORIGIN:
        return f"checkpoint at size {size}: stored size or root differ from what was signed"
    if body.root_hash != root:
        return f"checkpoint at size {size} does not match the recomputed tree"
    return None


def _before(txid: int | None, event_id: int) -> Q:
    """Events that sort before (txid, event_id) in sequencing order."""
    if txid is None:
        return Q(id__lt=event_id)
    return Q(txid__lt=txid) | Q(txid=txid, id__lt=event_id)


def _after(txid: int | None, event_id: int) -> Q:
    if txid is None:
        return Q(id__gt=event_id)
    return Q(txid__gt=txid) | Q(txid=txid, id__gt=event_id)


def _check_unsequenced(report: VerificationReport) -> None:
    """Events that are not in the log but sort before the sequencer's position were slipped in
    behind its back: the sequencer will never take them."""
    latest = Checkpoint.objects.order_by("-tree_size").first()
    if latest is None or latest.last_event_id is None:
        return
    cursor = _before(latest.last_txid, latest.last_event_id)
    if latest.last_txid is not None:
        cursor |= Q(txid__isnull=True)  # PostgreSQL stamps every event; a missing stamp is forged
    slipped_in = AuditEvent.objects.filter(cursor, leaf__isnull=True).order_by("id")
    for event_id, txid in slipped_in.values_list("id", "txid")[:100]:
        position = (
            AuditLeaf.objects.filter(event__in=AuditEvent.objects.filter(_after(txid, event_id)))
            .order_by("leaf_index")
            .values_list("leaf_index", flat=True)
            .first()
        )
        report.divergences.append(
            Divergence(
                position if position is not None else report.leaves,
                f"event {event_id} is not in the log although later events are (inserted behind the sequencer)",
            )
        )
