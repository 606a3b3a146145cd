"""The fast path of verification on PostgreSQL: check a range of the log's leaves against
leaf hashes that the database server recomputes.

``audit.verification`` walks the whole log leaf by leaf, joining every leaf to its event and
building the event's canonical bytes in Python. Here PostgreSQL hashes every event itself
(``audit.events.POSTGRES_LEAF_HASH_SQL``: the same bytes as ``canonical_event``, proven by
tests/audit/test_event_sql.py), and nothing is joined: on a log sequenced by
``audit.sequencer`` the leaves, in leaf order, are exactly the events in sequencing order
``(txid, id)``. One query per chunk of ``CHUNK`` leaves (chunks start at multiples of
``CHUNK``) reads the chunk's leaves through the primary key and as many events through the
``(txid, id)`` index, from just after the previous chunk's last event, turns each side into
one byte string of ``(hash, event id)`` records in order, and compares the two. Python gets
the verdict, the proof of the leaves' order (their indices) and the chunk's leaf hashes end
to end, which it folds into perfect subtrees: it handles no row on its own.

The scan stops at the start of the first chunk where anything is off: a leaf missing, extra
or duplicated, a stored hash that is not 32 bytes, an event whose hash cannot be computed, a
leaf whose event is not the next one in sequencing order (deleted, reordered, another event
in between, no transaction id), a hash that does not match. From there the caller goes on
with the exact walk, which says what is wrong; up to there the two agree by construction.

It returns the hashes of the leaves it checked folded into perfect subtrees (aligned blocks
of ``2**level`` leaves), cut at the positions the caller asks for (checkpoint sizes), so that
the caller can append them to its frontier and check each checkpoint on the way.

No Django here: ``Worker`` scans a second range on its own psycopg connection, in a thread,
inside the caller's exported snapshot, so that two server processes share the hashing.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from audit.events import POSTGRES_LEAF_HASH_SQL

CHUNK = 1 << 14
"""Leaves per query. The events' records are sorted in the query (which makes their order a
guarantee rather than a habit of the plan): 16,384 of them sort in memory within the default
``work_mem`` of 4 MB."""

HASH_SIZE = 32
_BEFORE_ALL = -(1 << 63)  # the smallest bigint: (txid, id) >= (this, this) holds for every event with a txid

_CHUNK_SQL = """
SELECT l.count, l.whole, l.indices, l.hashes, l.records = e.records, e.count, e.hashed,
       pg_catalog.substring(e.records, pg_catalog.octet_length(e.records) - 7), e.last_txid
FROM (
    SELECT count(*) AS count, count(*) FILTER (WHERE pg_catalog.octet_length(leaf_hash) = 32) AS whole,
           pg_catalog.string_agg(pg_catalog.int8send(leaf_index), ''::bytea) AS indices,
           pg_catalog.string_agg(leaf_hash, ''::bytea) AS hashes,
           pg_catalog.string_agg(leaf_hash || pg_catalog.int8send(event_id), ''::bytea) AS records
    FROM audit_auditleaf WHERE leaf_index >= %s AND leaf_index < %s
) l, (
    SELECT count(*) AS count, count(hash) AS hashed,
           pg_catalog.string_agg(hash || pg_catalog.int8send(id), ''::bytea ORDER BY txid, id) AS records,
           max(txid) AS last_txid
    FROM (
        SELECT id, txid, {hash} AS hash FROM audit_auditevent
        WHERE (txid, id) {after} (%s, %s) ORDER BY txid, id LIMIT %s
    ) e0
) e
"""
# The first chunk of a range starts at the event of its first leaf; the others after the
# previous chunk's last event.
_FIRST_CHUNK_SQL = _CHUNK_SQL.format(hash=POSTGRES_LEAF_HASH_SQL, after=">=")
_NEXT_CHUNK_SQL = _CHUNK_SQL.format(hash=POSTGRES_LEAF_HASH_SQL, after=">")
_FIRST_EVENT_SQL = (
    "SELECT e.txid, e.id FROM audit_auditleaf l JOIN audit_auditevent e ON e.id = l.event_id WHERE l.leaf_index = %s"
)
_TAIL_SQL = (
    "SELECT e.txid, e.id FROM audit_auditleaf l JOIN audit_auditevent e ON e.id = l.event_id"
    " WHERE l.leaf_index >= %s AND l.leaf_index < %s ORDER BY l.leaf_index"
)
_FOLLOWING_SQL = "SELECT id FROM audit_auditevent WHERE (txid, id) {after} (%s, %s) ORDER BY txid, id LIMIT 1"

Block = tuple[int, bytes]
"""``(level, root)`` of a perfect subtree of ``2**level`` leaves."""

Key = tuple[int, int]
"""An event's place in sequencing order: ``(txid, id)``."""


@dataclass
class Scan:
    start: int
    # Leaves [start, end) were checked and are fine; `blocks` cover exactly them, in order.
    end: int = 0
    blocks: list[Block] = field(default_factory=list)
    # The event of leaf `start` (None when the range starts at leaf 0), and the next event in
    # sequencing order after the last one checked (None when there is none): together they
    # tie neighbouring ranges together.
    first_event: int | None = None
    next_event: int | None = None
    # Sequencing keys of the last two events checked (oldest first), for the exact walk to
    # carry on with its order check.
    tail: list[Key] = field(default_factory=list)
    # True when the scan stopped early because something is off in the chunk from `end`.
    stopped: bool = False


def scan(
    conn: Any,
    *,
    start: int,
    stop: int,
    cuts: Sequence[int],
    on_blocks: Callable[[list[Block]], None] | None = None,
) -> Scan:
    """Check leaves ``[start, stop)`` on a psycopg connection that is inside a transaction
    on a UTF8 database. ``cuts`` are positions no block may straddle. Blocks go to
    ``on_blocks`` as they are made if given, else into the result."""
    import psycopg
    from psycopg.types.numeric import Int8

    result = Scan(start=start, end=start)
    emit = on_blocks or result.blocks.extend
    cuts = sorted({c for c in cuts if start < c < stop})
    # A plain psycopg cursor whatever the connection's cursor factory (Django's binds on the
    # client side, as text).
    with psycopg.Cursor(conn) as cursor:
        if start == 0:
            key = (_BEFORE_ALL, _BEFORE_ALL)
        else:
            first = cursor.execute(_FIRST_EVENT_SQL, [Int8(start)]).fetchone()
            if first is None or first[0] is None:
                result.stopped = True
                return result
            key, result.first_event = (first[0], first[1]), first[1]
        inclusive = True
        position = start
        while position < stop:
            end = min((position // CHUNK + 1) * CHUNK, stop)
            row = cursor.execute(
                _FIRST_CHUNK_SQL if inclusive else _NEXT_CHUNK_SQL,
                [Int8(position), Int8(end), Int8(key[0]), Int8(key[1]), Int8(end - position)],
                binary=True,
            ).fetchone()
            if row is None or not _checks_out(row, position, end):
                result.stopped = True
                break
            hashes, last_id, last_txid = row[3], row[7], row[8]
            while cuts and cuts[0] < end:  # no block straddles a cut
                cut = cuts.pop(0)
                emit(aligned_blocks(position, hashes[: (cut - position) * HASH_SIZE]))
                hashes = hashes[(cut - position) * HASH_SIZE :]
                position = cut
            emit(aligned_blocks(position, hashes))
            key, inclusive = (last_txid, struct.unpack(">q", last_id)[0]), False
            position = end
        result.end = position
        if result.end > result.start:
            tail = cursor.execute(_TAIL_SQL, [Int8(max(result.start, result.end - 2)), Int8(result.end)]).fetchall()
            result.tail = [(txid, event_id) for txid, event_id in tail]
        if not result.stopped:
            following = cursor.execute(
                _FOLLOWING_SQL.format(after=">=" if inclusive else ">"), [Int8(key[0]), Int8(key[1])]
            ).fetchone()
            result.next_event = following[0] if following else None
    return result


def _checks_out(row: tuple[Any, ...], position: int, end: int) -> bool:
    """Leaves ``[position, end)`` are all there, once each, and pair up with the events that
    follow in sequencing order, hash for hash and id for id.

    The leaf side is aggregated in no particular order, but all its aggregates take the rows
    in the same order: that the indices come out as ``position, position + 1, …`` proves
    that the hashes and records are in leaf order too, one per leaf. Each record is then 40
    bytes (every stored hash is 32 bytes), as is each of the ``count(hash)`` event records,
    so equal strings mean equal records, in order. The event side is sorted in the query."""
    count, whole, indices, _, same, event_count, hashed, _, _ = row
    width = end - position
    return bool(
        count == whole == event_count == hashed == width
        and same is True
        and indices == struct.pack(f">{width}q", *range(position, end))
    )


def aligned_blocks(start: int, hashes: bytes) -> list[Block]:
    """The leaf hashes of positions ``[start, start + n)``, given end to end (``n`` times 32
    bytes), as the largest perfect subtrees that start on a node boundary, left to right
    (what ``Frontier.append_subtree`` takes)."""
    blocks: list[Block] = []
    offset = 0
    count = len(hashes) // HASH_SIZE
    while offset < count:
        position = start + offset
        width = 1 << ((count - offset).bit_length() - 1)
        if position:
            width = min(width, position & -position)
        blocks.append((width.bit_length() - 1, perfect_root(hashes[offset * HASH_SIZE : (offset + width) * HASH_SIZE])))
        offset += width
    return blocks


_NODE_PREFIX = hashlib.sha256(b"\x01")


def perfect_root(hashes: bytes) -> bytes:
    """Root of a perfect subtree over a power-of-two number of leaf hashes, given end to end.
    (Copying a hash that has taken the node prefix is cheaper than starting a new one.)"""
    level = hashes
    while len(level) > HASH_SIZE:
        nodes = []
        for offset in range(0, len(level), 2 * HASH_SIZE):
            node = _NODE_PREFIX.copy()
            node.update(level[offset : offset + 2 * HASH_SIZE])
            nodes.append(node.digest())
        level = b"".join(nodes)
    return level


class Worker:
    """``scan`` of leaves ``[start, stop)`` in a thread, on a connection of its own inside the
    caller's exported snapshot, so that it sees exactly what the caller's transaction sees.
    A thread is enough: the hashing happens in the database server, and the thread waits for
    it with the GIL released."""

    def __init__(self, *, params: dict[str, Any], snapshot: str, start: int, stop: int, cuts: Sequence[int]) -> None:
        self.start = start
        self._result: Scan | None = None
        self._error: BaseException | None = None
        self._conn: Any = None
        self._closing = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(params, snapshot, start, stop, list(cuts)), name="audit-scan", daemon=True
        )
        self._thread.start()

    def _run(self, params: dict[str, Any], snapshot: str, start: int, stop: int, cuts: list[int]) -> None:
        import psycopg
        from psycopg import sql

        try:
            with psycopg.connect(**params) as conn:
                self._conn = conn
                if self._closing.is_set():
                    return
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                conn.read_only = True
                with conn.transaction():
                    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
                    self._result = scan(conn, start=start, stop=stop, cuts=cuts)
        except BaseException as error:  # handed to whoever asks for the result
            self._error = error

    def result(self) -> Scan:
        """Wait for the scan; RuntimeError if it failed."""
        self._thread.join()
        if self._result is None:
            raise RuntimeError(f"audit.scan worker failed: {self._error!r}") from self._error
        return self._result

    def close(self) -> None:
        """Stop the scan if it still runs (the caller failed first) and wait for the thread."""
        self._closing.set()
        while self._thread.is_alive():
            if self._conn is not None:
                # Cancels the query running now (the next one on the next round); the
                # connection may have finished or failed meanwhile.
                with contextlib.suppress(Exception):
                    self._conn.cancel_safe(timeout=1)
            self._thread.join(timeout=0.1)
