"""The fast path of verification on PostgreSQL: recompute a range of the log's leaves.

``audit.verification`` walks the whole log leaf by leaf, joining every leaf to its event.
That join is what costs: on a log sequenced by ``audit.sequencer`` the leaves, in leaf
order, are exactly the events in sequencing order ``(txid, id)``, so two ordered index
scans read side by side give every leaf its event without a join. ``scan`` reads them in
batches, recomputes each leaf hash from the event's canonical bytes (``audit.events``, the
time formatted by PostgreSQL) and stops at the first leaf where anything is off: a gap in
the leaf indices, a leaf whose event is not the next one in sequencing order (deleted,
reordered, or another event in between), an event without a transaction id, or a hash that
does not match. From there the caller goes on with the exact walk, which says what is
wrong; up to there the two agree by construction.

It returns the hashes of the leaves it checked folded into perfect subtrees (aligned blocks
of ``2**level`` leaves), cut at the positions the caller asks for (checkpoint sizes), so
that the caller can append them to its frontier and check each checkpoint on the way.

No Django here: ``scan_in_worker`` runs in a separate process with its own psycopg
connection, inside the caller's exported snapshot, so that two processes share the work
(the hashing is CPU bound and the GIL would serialise threads).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any

from audit.events import EVENT_TEMPLATE, POSTGRES_TIME_SQL

BATCH = 4096
"""Rows per fetch of each cursor: large enough to amortise the round trips, small enough to
stay in the CPU caches (larger batches measured slower)."""

_FLUSH = 1 << 16
"""Fold pending leaf hashes into blocks at least this often, to bound memory."""

_LEAVES_SQL = (
    "SELECT leaf_index, leaf_hash, event_id FROM audit_auditleaf WHERE leaf_index >= %s{stop} ORDER BY leaf_index"
)
_EVENTS_SQL = (
    "SELECT id, "  # noqa: S608 - built from constants only
    + POSTGRES_TIME_SQL.format("created_at")
    + ", actor, actor_id, action, target_type, target_id, data, request_id, txid"
    " FROM audit_auditevent{where} ORDER BY txid, id"
)
_FIRST_EVENT_SQL = (
    "SELECT e.txid, e.id FROM audit_auditleaf l JOIN audit_auditevent e ON e.id = l.event_id WHERE l.leaf_index = %s"
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
    # The event of leaf `start`, and the next event in sequencing order after the last one
    # checked (None when there is none): together they tie neighbouring ranges together.
    first_event: int | None = None
    next_event: int | None = None
    # Sequencing keys of the last two events checked (oldest first), for the exact walk to
    # carry on with its order check.
    tail: list[Key] = field(default_factory=list)
    # True when the scan stopped early because something is off at leaf `end`.
    stopped: bool = False


def scan(
    conn: Any,
    *,
    start: int,
    stop: int | None,
    cuts: Sequence[int],
    on_blocks: Callable[[list[Block]], None] | None = None,
) -> Scan:
    """Check leaves ``[start, stop)`` (to the last leaf when ``stop`` is None) on a psycopg
    connection that is inside a transaction. ``cuts`` are positions no block may straddle.
    Blocks go to ``on_blocks`` as they are made if given, else into the result."""
    result = Scan(start=start, end=start)
    with conn.cursor() as cursor:
        if start == 0:
            where, params = "", []
        else:
            first = cursor.execute(_FIRST_EVENT_SQL, [start]).fetchone()
            if first is None or first[0] is None:
                result.stopped = True
                return result
            where, params = " WHERE (txid, id) >= (%s, %s)", list(first)
    cuts = sorted({c for c in cuts if c > start and (stop is None or c < stop)})
    emit = on_blocks or result.blocks.extend
    leaves_sql = _LEAVES_SQL.format(stop="" if stop is None else " AND leaf_index < %s")
    with (
        conn.cursor(name=f"audit_scan_leaves_{start}", binary=True) as leaves_cursor,
        conn.cursor(name=f"audit_scan_events_{start}", binary=True) as events_cursor,
    ):
        leaves_cursor.execute(leaves_sql, [start] if stop is None else [start, stop])
        events_cursor.execute(_EVENTS_SQL.format(where=where), params)
        _scan_rows(result, leaves_cursor, events_cursor, stop=stop, cuts=cuts, emit=emit)
    return result


def _scan_rows(
    result: Scan, leaves_cursor: Any, events_cursor: Any, *, stop: int | None, cuts: list[int], emit: Any
) -> None:
    sha256 = hashlib.sha256
    quote = encode_basestring
    template = "\x00" + EVENT_TEMPLATE  # the leaf hash prefix (RFC 6962) rides along
    position = result.start
    pending: list[bytes] = []  # hashes of checked leaves [pending_start, position)
    pending_start = position
    cut_index = 0
    while True:
        want = BATCH if stop is None else min(BATCH, stop - position)
        leaves = leaves_cursor.fetchmany(want) if want > 0 else []
        if not leaves:
            break
        events = events_cursor.fetchmany(len(leaves))
        if result.first_event is None and events:
            result.first_event = events[0][0]
        hashes = [
            sha256(
                (
                    template
                    % (
                        quote(action),
                        quote(actor),
                        "null" if actor_id is None else actor_id,
                        data,
                        event_id,
                        quote(request_id),
                        quote(target_id),
                        quote(target_type),
                        quote(time),
                    )
                ).encode()
            ).digest()
            for event_id, time, actor, actor_id, action, target_type, target_id, data, request_id, _ in events
        ]
        good = _good_prefix(position, leaves, events, hashes)
        if good:
            result.tail = (result.tail + [(row[9], row[0]) for row in events[max(0, good - 2) : good]])[-2:]
        # Fold the good hashes into blocks, cutting at the positions asked for.
        taken = 0
        while taken < good:
            upto, at_cut = good, False
            if cut_index < len(cuts) and cuts[cut_index] <= position + good:
                upto, at_cut = cuts[cut_index] - position, True
                cut_index += 1
            pending.extend(hashes[taken:upto])
            taken = upto
            if at_cut or len(pending) >= _FLUSH:
                emit(aligned_blocks(pending_start, pending))
                pending_start += len(pending)
                pending = []
        position += good
        if good < len(leaves):
            result.stopped = True
            break
    if pending:
        emit(aligned_blocks(pending_start, pending))
    result.end = position
    if not result.stopped:
        following = events_cursor.fetchone()
        result.next_event = following[0] if following else None


def _good_prefix(position: int, leaves: list[Any], events: list[Any], hashes: list[bytes]) -> int:
    """How many leading rows pair up and check out (all of them, almost always)."""
    count = len(leaves)
    if (
        len(events) == count
        and leaves[0][0] == position
        and leaves[-1][0] == position + count - 1  # leaf indices are unique: dense
        and [leaf[2] for leaf in leaves] == [event[0] for event in events]
        and [leaf[1] for leaf in leaves] == hashes
        and all(event[9] is not None for event in events)
    ):
        return count
    for offset, leaf in enumerate(leaves):
        if offset >= len(events):
            return offset
        event = events[offset]
        if leaf[0] != position + offset or leaf[2] != event[0] or event[9] is None or bytes(leaf[1]) != hashes[offset]:
            return offset
    return count


def aligned_blocks(start: int, hashes: list[bytes]) -> list[Block]:
    """The leaf hashes of positions ``[start, start + len(hashes))`` as the largest perfect
    subtrees that start on a node boundary, left to right (what ``Frontier.append_subtree``
    takes). The hashes are SHA-256 digests made here, so they are not checked again."""
    blocks: list[Block] = []
    offset = 0
    count = len(hashes)
    while offset < count:
        position = start + offset
        width = 1 << ((count - offset).bit_length() - 1)
        if position:
            width = min(width, position & -position)
        blocks.append((width.bit_length() - 1, perfect_root(hashes[offset : offset + width])))
        offset += width
    return blocks


def perfect_root(hashes: list[bytes]) -> bytes:
    """Root of a perfect subtree over a power-of-two number of leaf hashes."""
    sha256 = hashlib.sha256
    level = hashes
    while len(level) > 1:
        level = [sha256(b"\x01" + left + right).digest() for left, right in zip(level[::2], level[1::2], strict=True)]
    return level[0]


class Worker:
    """``scan`` from a leaf to the last one in another process (``python -m audit.scan``),
    with its own connection inside the caller's exported snapshot, so that it sees exactly
    what the caller's transaction sees. A plain child process rather than multiprocessing,
    which would re-run the caller's main module in the child."""

    def __init__(self, *, params: dict[str, Any], snapshot: str, start: int, cuts: Sequence[int]) -> None:
        import os
        import subprocess
        import sys
        import tempfile
        from pathlib import Path

        self.start = start
        root = str(Path(__file__).resolve().parent.parent)  # where the audit package is
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        request = {"params": params, "snapshot": snapshot, "start": start, "cuts": [c for c in cuts if c > start]}
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "audit.scan"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            env=env,
        )
        # The child reads its request before anything else, so this does not wait for long.
        self.process.stdin.write(json.dumps(request).encode())  # type: ignore[union-attr]
        self.process.stdin.close()  # type: ignore[union-attr]

    def result(self) -> Scan:
        """Wait for the child; RuntimeError if it failed."""
        out = self.process.stdout.read()  # type: ignore[union-attr]
        if self.process.wait():
            self._errors.seek(0)
            errors = self._errors.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"audit.scan worker exited with {self.process.returncode}: {errors}")
        return _scan_from_json(json.loads(out))

    def close(self) -> None:
        """Stop the child if it still runs (the caller failed first) and release its pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()  # type: ignore[union-attr]
        self._errors.close()


def _scan_to_json(result: Scan) -> dict[str, Any]:
    return {
        "start": result.start,
        "end": result.end,
        "blocks": [[level, root.hex()] for level, root in result.blocks],
        "first_event": result.first_event,
        "next_event": result.next_event,
        "tail": [list(key) for key in result.tail],
        "stopped": result.stopped,
    }


def _scan_from_json(data: dict[str, Any]) -> Scan:
    return Scan(
        start=int(data["start"]),
        end=int(data["end"]),
        blocks=[(int(level), bytes.fromhex(root)) for level, root in data["blocks"]],
        first_event=data["first_event"],
        next_event=data["next_event"],
        tail=[(int(txid), int(event_id)) for txid, event_id in data["tail"]],
        stopped=bool(data["stopped"]),
    )


def _worker_main() -> None:
    import sys

    import psycopg
    from psycopg import sql

    request = json.loads(sys.stdin.buffer.read())
    with psycopg.connect(**request["params"]) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(request["snapshot"])))
            result = scan(conn, start=request["start"], stop=None, cuts=request["cuts"])
    sys.stdout.write(json.dumps(_scan_to_json(result)))


if __name__ == "__main__":
    _worker_main()
