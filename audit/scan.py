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

In the same pass, so that the log is read once, it checks the two things verification asks of
the stored tree and of the events' times, as far as it can see them from one chunk:
- the stored nodes: Python computes every interior node that lies wholly inside the chunk
  (which it needs anyway for the blocks) and compares them with the stored ones, read level
  by level through the primary key. The nodes that span chunks are the caller's to check
  (``Scan.spans`` are what it has to fold to find them). A stored node that differs, or is
  missing, only clears ``Scan.nodes_ok``: the leaves go on being checked, and the caller
  runs its own node check, which says what is wrong.
- backdating: the server reports the largest drop of an event's time below the latest time
  before it in sequencing order, within the chunk (or the chunk's span, when that is within
  the tolerance), and the chunk's earliest and latest times; Python carries the latest across
  chunks (``Scan.drop``).

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
from datetime import datetime, timedelta
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
       pg_catalog.substring(e.records, pg_catalog.octet_length(e.records) - 7), e.last_txid,
       CASE WHEN e.latest - e.earliest > %(tolerance)s THEN (
           SELECT min(created_at - before) FROM (
               SELECT created_at,
                      max(created_at) OVER (ORDER BY txid, id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                          AS before
               FROM audit_auditevent
               WHERE (txid, id) {after} (%(txid)s, %(id)s) ORDER BY txid, id LIMIT %(width)s
           ) w
       ) ELSE e.earliest - e.latest END,
       e.earliest, e.latest
FROM (
    SELECT count(*) AS count, count(*) FILTER (WHERE pg_catalog.octet_length(leaf_hash) = 32) AS whole,
           pg_catalog.string_agg(pg_catalog.int8send(leaf_index), ''::bytea) AS indices,
           pg_catalog.string_agg(leaf_hash, ''::bytea) AS hashes,
           pg_catalog.string_agg(leaf_hash || pg_catalog.int8send(event_id), ''::bytea) AS records
    FROM (
        SELECT leaf_index, leaf_hash, event_id FROM audit_auditleaf
        WHERE leaf_index >= %(position)s AND leaf_index < %(end)s ORDER BY leaf_index
    ) l0
) l, (
    SELECT count(*) AS count, count(hash) AS hashed,
           pg_catalog.string_agg(hash || pg_catalog.int8send(id), ''::bytea ORDER BY txid, id) AS records,
           max(txid) AS last_txid, min(created_at) AS earliest, max(created_at) AS latest
    FROM (
        SELECT id, txid, created_at, {hash} AS hash FROM audit_auditevent
        WHERE (txid, id) {after} (%(txid)s, %(id)s) ORDER BY txid, id LIMIT %(width)s
    ) e0
) e
"""
# The events' times: the largest drop of one below the latest before it needs a window over
# the chunk's events in sequencing order, a tenth of the server's work when it runs over every
# chunk. When the chunk's times span no more than the tolerance no drop can exceed it, and
# the span (earliest minus latest) stands for the drop: a bound below it, which says the same
# as the drop itself about what exceeds the tolerance. Only the chunks that span more are
# read again (without hashing) through the window.
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


def _nodes_sql(top: int) -> str:
    """The stored nodes of levels 1 to ``top`` whose index lies in a range given for each
    level, one row per level that has any: the level, the count of nodes and of 32-byte
    ones, their indices (int8 each) and hashes end to end, both aggregated in the same order
    (one index range scan per level)."""
    return " UNION ALL ".join(
        f"SELECT {level}, count(*), count(*) FILTER (WHERE pg_catalog.octet_length(hash) = 32),"  # noqa: S608
        " pg_catalog.string_agg(pg_catalog.int8send(\"index\"), ''::bytea), pg_catalog.string_agg(hash, ''::bytea)"
        f' FROM audit_auditnode WHERE level = {level} AND "index" >= %s AND "index" < %s HAVING count(*) > 0'
        for level in range(1, top + 1)
    )


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
    # Leaves [start, end) as the largest aligned perfect subtrees of each chunk, not cut:
    # every stored node inside one of them was compared with the recomputed one, and
    # `nodes_ok` says whether all matched and none was missing. The nodes over several
    # spans are left to the caller.
    spans: list[Block] = field(default_factory=list)
    nodes_ok: bool = True
    # Events of leaves [start, end): the largest drop of an event's time below the latest
    # time before it in the range (None for fewer than two events; negative when an event
    # is earlier than one before it), and the earliest and latest times. With a tolerance
    # (`scan`), a chunk whose times span no more than it gives its span as a bound below its
    # drop instead: either way `drop` lies below minus the tolerance exactly when the largest
    # drop does.
    drop: timedelta | None = None
    earliest: datetime | None = None
    latest: datetime | None = None

    def note_times(self, drop: timedelta | None, earliest: datetime | None, latest: datetime | None) -> None:
        """Carry the times of the events that follow the range's so far."""
        if self.latest is not None and earliest is not None:
            across = earliest - self.latest
            drop = across if drop is None else min(drop, across)
        if drop is not None:
            self.drop = drop if self.drop is None else min(self.drop, drop)
        if earliest is not None:
            self.earliest = earliest if self.earliest is None else min(self.earliest, earliest)
        if latest is not None:
            self.latest = latest if self.latest is None else max(self.latest, latest)


def scan(
    conn: Any,
    *,
    start: int,
    stop: int,
    cuts: Sequence[int],
    on_blocks: Callable[[list[Block]], None] | None = None,
    tolerance: timedelta | None = None,
) -> Scan:
    """Check leaves ``[start, stop)`` on a psycopg connection that is inside a transaction
    on a UTF8 database. ``cuts`` are positions no block may straddle. Blocks go to
    ``on_blocks`` as they are made if given, else into the result. ``tolerance``: how far an
    event's time may lie before an earlier one's (``Scan.drop``); None for the exact drop."""
    import psycopg
    from psycopg.types.numeric import Int8

    bound = tolerance if tolerance is not None else timedelta(microseconds=-1)  # every span exceeds it
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
        next_cut = 0
        while position < stop:
            end = min((position // CHUNK + 1) * CHUNK, stop)
            row = cursor.execute(
                _FIRST_CHUNK_SQL if inclusive else _NEXT_CHUNK_SQL,
                {
                    "position": Int8(position),
                    "end": Int8(end),
                    "txid": Int8(key[0]),
                    "id": Int8(key[1]),
                    "width": Int8(end - position),
                    "tolerance": bound,
                },
                binary=True,
            ).fetchone()
            if row is None or not _checks_out(row, position, end):
                result.stopped = True
                break
            last_id, last_txid = row[7], row[8]
            levels = node_levels(position, row[3])
            if result.nodes_ok:
                result.nodes_ok = _stored_nodes_match(cursor, position, end, levels)
            result.spans += _blocks(position, end, levels)
            result.note_times(row[9], row[10], row[11])
            piece = position
            while next_cut < len(cuts) and cuts[next_cut] < end:  # no block straddles a cut
                emit(_blocks(piece, cuts[next_cut], levels, first=position))
                piece = cuts[next_cut]
                next_cut += 1
            emit(_blocks(piece, end, levels, first=position))
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
    count, whole, indices, _, same, event_count, hashed = row[:7]
    width = end - position
    return bool(
        count == whole == event_count == hashed == width
        and same is True
        and indices == struct.pack(f">{width}q", *range(position, end))
    )


def _stored_nodes_match(cursor: Any, start: int, end: int, levels: list[bytes]) -> bool:
    """The stored nodes inside leaves ``[start, end)`` are exactly the recomputed ones
    (``levels``, from ``node_levels``): each level's indices come out as ``first, first + 1,
    …`` (the hashes were aggregated in the same order, so they are in index order too), each
    hash is 32 bytes, and the hashes end to end are the recomputed ones."""
    from psycopg.types.numeric import Int8

    top = len(levels) - 1
    if top < 1:
        return True
    ranges = [(-(-start >> level), end >> level) for level in range(1, top + 1)]
    rows = cursor.execute(
        _nodes_sql(top), [Int8(bound) for bounds in ranges for bound in bounds], binary=True
    ).fetchall()
    found = {level: (count, whole, indices, hashes) for level, count, whole, indices, hashes in rows}
    for level, (first, stop) in enumerate(ranges, start=1):
        count, whole, indices, hashes = found.get(level, (0, 0, b"", b""))
        width = stop - first
        if not (
            count == whole == width
            and indices == struct.pack(f">{width}q", *range(first, stop))
            and hashes == levels[level]
        ):
            return False
    return True


def node_levels(start: int, hashes: bytes) -> list[bytes]:
    """The leaf hashes of positions ``[start, start + n)``, given end to end (``n`` times 32
    bytes), and, level by level above them, every node that lies wholly inside that range,
    end to end in index order: level ``L`` holds the nodes from index ``ceil(start / 2**L)``
    on. Levels up to the highest that has one. (Copying a hash that has taken the node prefix
    is cheaper than starting a new one.)"""
    end = start + len(hashes) // HASH_SIZE
    levels = [hashes]
    level = 1
    while -(-start >> level) < end >> level:
        below = levels[-1]
        first = -(-start >> level)
        offset = (2 * first - -(-start >> (level - 1))) * HASH_SIZE  # 0, or 1 hash: a right child
        count = (end >> level) - first
        view = memoryview(below)
        nodes = []
        for at in range(offset, offset + 2 * count * HASH_SIZE, 2 * HASH_SIZE):
            node = _NODE_PREFIX.copy()
            node.update(view[at : at + 2 * HASH_SIZE])
            nodes.append(node.digest())
        levels.append(b"".join(nodes))
        level += 1
    return levels


def _blocks(start: int, stop: int, levels: list[bytes], *, first: int | None = None) -> list[Block]:
    """Leaves ``[start, stop)`` as the largest perfect subtrees that start on a node boundary,
    left to right (what ``Frontier.append_subtree`` takes), their roots taken from ``levels``
    (``node_levels`` of a range from ``first``, ``start`` by default, that holds them)."""
    first = start if first is None else first
    blocks: list[Block] = []
    position = start
    while position < stop:
        width = 1 << ((stop - position).bit_length() - 1)
        if position:
            width = min(width, position & -position)
        level = width.bit_length() - 1
        at = ((position >> level) - -(-first >> level)) * HASH_SIZE
        blocks.append((level, levels[level][at : at + HASH_SIZE]))
        position += width
    return blocks


def aligned_blocks(start: int, hashes: bytes) -> list[Block]:
    """The leaf hashes of positions ``[start, start + n)``, given end to end (``n`` times 32
    bytes), as the largest perfect subtrees that start on a node boundary, left to right
    (what ``Frontier.append_subtree`` takes)."""
    return _blocks(start, start + len(hashes) // HASH_SIZE, node_levels(start, hashes))


_NODE_PREFIX = hashlib.sha256(b"\x01")


class Worker:
    """``scan`` of leaves ``[start, stop)`` in a thread, on a connection of its own inside the
    caller's exported snapshot, so that it sees exactly what the caller's transaction sees.
    A thread is enough: the hashing happens in the database server, and the thread waits for
    it with the GIL released."""

    def __init__(
        self,
        *,
        params: dict[str, Any],
        snapshot: str,
        start: int,
        stop: int,
        cuts: Sequence[int],
        tolerance: timedelta | None = None,
        then: Callable[[], None] | None = None,
    ) -> None:
        """``then``: more work for the thread once its scan has succeeded, while the caller is
        still busy with its own range (errors in it are the caller's to notice)."""
        self.start = start
        self._tolerance = tolerance
        self._then = then
        self._result: Scan | None = None
        self._error: BaseException | None = None
        self._conn: Any = None
        self._closing = threading.Event()
        self._thread = threading.Thread(
            target=self._run,
            args=(params, snapshot, start, stop, list(cuts)),
            name="audit-scan",
            daemon=True,
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
                    self._result = scan(conn, start=start, stop=stop, cuts=cuts, tolerance=self._tolerance)
        except BaseException as error:  # handed to whoever asks for the result
            self._error = error
            return
        if self._then is not None and not self._closing.is_set():
            self._then()

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
