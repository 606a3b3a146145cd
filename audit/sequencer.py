"""The sequencer: the single writer of the Merkle log.

Business transactions only insert events (cheap and concurrent). The sequencer then takes
committed events in a fixed order, gives them dense leaf indices, stores the leaf and
completed-subtree hashes, and signs a checkpoint, all in one transaction per batch.

Order and completeness on PostgreSQL: every event carries its transaction id (``txid``, set
by a trigger). Every transaction older than the snapshot's ``xmin`` has finished, so the
events with ``txid < xmin`` are exactly the committed ones that no later commit can precede;
they are taken in ``(txid, id)`` order after the last one sequenced. Nothing is skipped even
when transactions commit out of id order. On SQLite writers are serialised, so id order is
commit order. Two sequencers never interleave: an advisory lock on PostgreSQL, the database
write lock on SQLite.
"""

import logging
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction

from audit.alarms import LogInconsistent, alarm_raise
from audit.events import EVENT_COLUMNS, POSTGRES_TIME_SQL, event_bytes, format_time
from audit.models import AlarmKind, AuditEvent, AuditLeaf, AuditNode, Checkpoint
from audit.signing import checkpoint_signer
from audit.trust import SignedHead, state_load, state_save
from audit.witnessing import witness_submissions_enqueue
from tlog.merkle import EMPTY_ROOT, Frontier, ProofError, consistency_proof, leaf_hash, verify_consistency
from tlog.note import Checkpoint as CheckpointNote
from tlog.note import NoteError

logger = logging.getLogger(__name__)

# "RGAU": an arbitrary constant that no other code in this database uses.
ADVISORY_LOCK_KEY = 0x52474155


def database_now() -> datetime:
    """The database's clock: every time in the audit trail comes from one clock."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT statement_timestamp()")
            now: datetime = cursor.fetchone()[0]
            return now
        cursor.execute("SELECT strftime('%Y-%m-%dT%H:%M:%f', 'now')")
        return datetime.fromisoformat(cursor.fetchone()[0]).replace(tzinfo=UTC)


def sequence_pending(*, batch_size: int | None = None) -> int:
    """Sequence every committed event not yet in the log. Returns how many were added.

    Raises LogInconsistent, after raising the alarm, when the stored log is not one this
    sequencer can extend (audit/trust.py): then nothing is signed."""
    limit = batch_size or settings.AUDIT_SEQUENCE_BATCH
    total = 0
    while True:
        try:
            added = _sequence_batch(limit)
        except LogInconsistent as refusal:
            alarm_raise(kind=refusal.kind, detail=refusal.detail)
            raise
        total += added
        if added < limit:
            return total


def _pending_events(latest: Checkpoint | None, xmin: int | None, limit: int) -> list[tuple[Any, ...]]:
    if xmin is not None:
        return _pending_events_postgres(latest, xmin, limit)
    events = AuditEvent.objects.all()
    if latest is not None and latest.last_event_id is not None:
        events = events.filter(id__gt=latest.last_event_id)
    return list(events.order_by("id").values_list(*EVENT_COLUMNS)[:limit])


# EVENT_COLUMNS, with the time as its canonical text (no datetime per row).
_PENDING_SQL = (
    "SELECT id, "  # noqa: S608 - built from constants only
    + POSTGRES_TIME_SQL.format("created_at")
    + ", actor, actor_id, action, target_type, target_id, data, request_id, txid"
    " FROM audit_auditevent WHERE txid < %s{after} ORDER BY txid, id LIMIT %s"
)


def _pending_events_postgres(latest: Checkpoint | None, xmin: int, limit: int) -> list[tuple[Any, ...]]:
    """Committed events after the last one sequenced, in (txid, id) order: one index range
    scan on audit_event_txid_id (the row comparison is what lets PostgreSQL use it as a range)."""
    if latest is not None and latest.last_txid is not None:
        sql, params = (
            _PENDING_SQL.format(after=" AND (txid, id) > (%s, %s)"),
            [xmin, latest.last_txid, latest.last_event_id, limit],
        )
    else:
        sql, params = _PENDING_SQL.format(after=""), [xmin, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


def _sequence_batch(limit: int) -> int:
    with transaction.atomic():
        xmin = None
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
                if not cursor.fetchone()[0]:
                    return 0  # another sequencer holds the log; it will take these events
                cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                xmin = cursor.fetchone()[0]
        latest = Checkpoint.objects.order_by("-tree_size").first()
        # Checked also when nothing is pending: a moved position would otherwise hide events.
        frontier = trusted_frontier(latest)
        rows = _pending_events(latest, xmin, limit)
        if not rows:
            return 0
        if latest is None and state_load() is None:
            # The state file is written after the commit, once the lock is released: record the
            # empty log now, under the lock, so that a second sequencer arriving in between finds
            # a head this first checkpoint extends rather than no state file at all.
            state_save(SignedHead(0, EMPTY_ROOT, ""))
        leaves: list[tuple[int, int, bytes]] = []
        nodes: list[tuple[int, int, bytes]] = []
        for row in rows:
            digest = leaf_hash(event_bytes(row))
            leaves.append((frontier.size, row[0], digest))
            nodes.extend(frontier.append(digest))
        try:
            with transaction.atomic():
                _store(leaves, nodes)
        except DatabaseError as error:  # a duplicate key: rows the sequencer did not write
            raise LogInconsistent(
                AlarmKind.STORE_FAILED, f"storing leaves from {leaves[0][0]} failed ({error}); nothing was signed"
            ) from error
        checkpoint = _checkpoint_create(frontier, last=rows[-1], previous=latest.tree_size if latest else 0)
        head = SignedHead(checkpoint.tree_size, bytes(checkpoint.root_hash), checkpoint.signed_note)
        transaction.on_commit(lambda: state_save(head))
        # Witnesses get it through the outbox once it is committed (audit.tasks.witness_submit).
        witness_submissions_enqueue(checkpoint)
        return len(rows)


def trusted_frontier(latest: Checkpoint | None) -> Frontier:
    """The frontier to extend, once the database is shown to hold what this sequencer last
    signed (audit/trust.py); LogInconsistent otherwise.

    The latest checkpoint must verify under the key; its stored frontier must fold to the root
    it signs; it must be the head in the state file or a consistent extension of it (the file
    is written after commit, so it may lag, never lead); no leaf may lie past it; and the
    position it records must be its last leaf's event."""
    return _frontier_checked(latest, state_load(), check_state=True)


def trusted_frontier_unchecked_state(latest: Checkpoint) -> Frontier:
    """The checks of ``trusted_frontier`` that need no state file (for audit_verify)."""
    return _frontier_checked(latest, None, check_state=False)


def _frontier_checked(latest: Checkpoint | None, state: SignedHead | None, *, check_state: bool) -> Frontier:
    if latest is None:
        if state is not None and state.size > 0:
            raise LogInconsistent(
                AlarmKind.ROLLED_BACK,
                f"the database has no checkpoint, but this sequencer signed a log of {state.size} leaves",
            )
        if AuditLeaf.objects.exists():
            raise LogInconsistent(AlarmKind.LEAVES_PAST_CHECKPOINT, "there are leaves but no checkpoint")
        return Frontier(size=0, hashes=[])
    size = latest.tree_size
    try:
        signed = CheckpointNote.parse(checkpoint_signer().verifier().open(latest.signed_note))
    except NoteError as error:
        raise LogInconsistent(
            AlarmKind.CHECKPOINT_INVALID, f"the checkpoint at size {size} does not verify: {error}"
        ) from error
    if signed.size != size or signed.origin != settings.AUDIT_LOG_ORIGIN:
        raise LogInconsistent(AlarmKind.CHECKPOINT_INVALID, f"the checkpoint at size {size} signs another size")
    try:
        frontier = Frontier.from_json(latest.frontier)
    except (TypeError, ValueError) as error:
        raise LogInconsistent(
            AlarmKind.FRONTIER_MISMATCH, f"the frontier stored at size {size} is malformed: {error}"
        ) from error
    if frontier.size != size or frontier.root() != signed.root_hash:
        raise LogInconsistent(
            AlarmKind.FRONTIER_MISMATCH, f"the frontier stored at size {size} does not reproduce the signed root"
        )
    if check_state:
        _check_against_state(state, signed.size, signed.root_hash)
    if AuditLeaf.objects.filter(leaf_index__gte=size).exists():
        raise LogInconsistent(
            AlarmKind.LEAVES_PAST_CHECKPOINT, f"leaves at or past {size} exist that no checkpoint signs"
        )
    last = AuditLeaf.objects.filter(leaf_index=size - 1).values_list("event_id", "event__txid").first()
    if size and (last is None or last != (latest.last_event_id, latest.last_txid)):
        raise LogInconsistent(
            AlarmKind.POSITION_MOVED,
            f"the checkpoint at size {size} records position ({latest.last_txid}, {latest.last_event_id}), "
            f"its last leaf is {last}",
        )
    return frontier


def _check_against_state(state: SignedHead | None, size: int, root: bytes) -> None:
    if state is None:
        if settings.DEBUG:  # a development database from before the state file: adopt it
            logger.warning("audit sequencer: no state file; adopting the database's checkpoint at size %s", size)
            return
        raise LogInconsistent(
            AlarmKind.STATE_MISSING,
            f"the sequencer's state file {settings.AUDIT_SEQUENCER_STATE_FILE} is missing; "
            "after audit_verify passes, an operator adopts the log with manage.py audit_trust_adopt",
        )
    if state.size > size:
        raise LogInconsistent(
            AlarmKind.ROLLED_BACK,
            f"this sequencer signed a log of {state.size} leaves; the database's latest checkpoint has {size}",
        )
    if state.size == size:
        if state.root_hash != root:
            raise LogInconsistent(
                AlarmKind.FORKED, f"the checkpoint at size {size} is not the one this sequencer signed"
            )
        return
    if state.size == 0:
        return
    from audit.selectors import fetch_nodes

    try:
        proof = consistency_proof(state.size, size, fetch_nodes)
        verify_consistency(state.size, size, proof, state.root_hash, root)
    except (ValueError, ProofError) as error:
        raise LogInconsistent(
            AlarmKind.NOT_AN_EXTENSION,
            f"the log at size {size} does not extend the one of size {state.size} this sequencer signed: {error}",
        ) from error


def _store(leaves: list[tuple[int, int, bytes]], nodes: list[tuple[int, int, bytes]]) -> None:
    """Insert the batch's leaves and completed nodes: on PostgreSQL one statement each,
    whatever the batch size (arrays, no per-row placeholders or model objects)."""
    if connection.vendor != "postgresql":
        AuditLeaf.objects.bulk_create(
            [AuditLeaf(leaf_index=index, event_id=event_id, leaf_hash=digest) for index, event_id, digest in leaves],
            batch_size=2000,
        )
        AuditNode.objects.bulk_create(
            [AuditNode(level=level, index=index, hash=digest) for level, index, digest in nodes], batch_size=2000
        )
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditleaf (leaf_index, event_id, leaf_hash)"
            " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bytea[])",
            [list(column) for column in zip(*leaves, strict=True)],
        )
        if nodes:
            cursor.execute(
                'INSERT INTO audit_auditnode (level, "index", hash)'
                " SELECT * FROM unnest(%s::smallint[], %s::bigint[], %s::bytea[])",
                [list(column) for column in zip(*nodes, strict=True)],
            )


def _checkpoint_create(frontier: Frontier, *, last: tuple[Any, ...], previous: int) -> Checkpoint:
    signer = checkpoint_signer()
    now = database_now()
    root = frontier.root()
    note = CheckpointNote(
        origin=settings.AUDIT_LOG_ORIGIN,
        size=frontier.size,
        root_hash=root,
        # "previous": the checkpoint this one follows, so that audit_verify finds a deleted one.
        extensions=(f"time {format_time(now)}", f"previous {previous}"),
    )
    return Checkpoint.objects.create(
        tree_size=frontier.size,
        root_hash=root,
        frontier=frontier.to_json(),
        last_txid=last[-1],
        last_event_id=last[0],
        signed_note=signer.sign(note.body()),
        key_id=signer.key_id.hex(),
        created_at=now,
    )
