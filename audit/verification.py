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

Rows are streamed in large batches and nothing is built per row beyond a tuple. On
PostgreSQL the leaves are first checked by audit/scan.py, with leaf hashes the database server
computes, without a join and, for a long log, on two connections; from the first chunk where
anything is off the leaf-by-leaf walk below takes over, so the report is the same as that of
the walk alone (tests/audit/test_verify_paths.py). The same pass compares the stored nodes and
the events' times, so that when the whole log checks out neither is read again. What that
trusts: docs/audit.md.
"""

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from audit.events import POSTGRES_TIME_SQL, event_bytes
from audit.models import AuditEvent, AuditLeaf, AuditNode, Checkpoint
from audit.signing import checkpoint_signer
from tlog.merkle import Frontier, fold_right, leaf_hash, node_hash, range_coords
from tlog.note import Checkpoint as CheckpointNote
from tlog.note import NoteError, NoteVerifier

logger = logging.getLogger(__name__)

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
    # Leaves past the latest checkpoint: no signature covers them, so they are not verified.
    unsigned: int = 0
    trusted: int = 0  # checkpoints kept outside that the log was checked against
    start: int = 0  # the first leaf checked (a trusted checkpoint's size with since_trusted)

    @property
    def ok(self) -> bool:
        return not self.divergences

    @property
    def first(self) -> Divergence | None:
        """The first exactly located divergence; failing that, the start of the first range."""
        exact = [d for d in self.divergences if d.exact]
        candidates = exact or self.divergences
        return min(candidates, key=lambda d: d.leaf_index) if candidates else None


# Logs at least this long are scanned on two connections (see _fast_walk).
PARALLEL_MIN_LEAVES = 1 << 16
# The fast path on PostgreSQL (audit/scan.py); the exact walk alone when False.
FAST_PATH = True
_PROGRESS_EVERY = 100_000


@dataclass
class _Walk:
    """Where verification stands: the recomputed frontier and what has been checked."""

    report: VerificationReport
    verifier: NoteVerifier
    checkpoints: list[tuple[int, Any, str]]
    progress: Callable[[int], None] | None
    frontier: Frontier = field(default_factory=lambda: Frontier(size=0, hashes=[]))
    next_checkpoint: int = 0
    last_good_size: int = 0
    trusted: list[CheckpointNote] = field(default_factory=list)  # sorted by size
    next_trusted: int = 0
    previous_order: tuple[int, int] | None = None
    latest_time: Any = None  # the latest event time seen (text on PostgreSQL, datetime on SQLite)
    backdated: list[int] = field(default_factory=list)
    walked_from: int | None = None  # where the leaf-by-leaf walk started
    before_previous: tuple[int, int] | None = None
    # The fast path's parts, in leaf order, when they checked every leaf (audit/scan.py):
    # they also tell whether the stored nodes inside their chunks matched and how the
    # events' times ran, so that the node and backdating checks need not read the log again.
    scanned: list[Any] = field(default_factory=list)
    # Checkpoints (by their place in `checkpoints`) whose signed note was already opened and
    # compared with the stored size and root, ahead of the walk: what _note_problem said.
    opened: dict[int, str | None] = field(default_factory=dict)

    def append(self, recomputed: bytes) -> None:
        self.frontier.append(recomputed)
        self._check_checkpoints()
        if self.progress and self.frontier.size % _PROGRESS_EVERY == 0:
            self.progress(self.frontier.size)

    def append_blocks(self, blocks: list[tuple[int, bytes]]) -> None:
        """Whole perfect subtrees of checked leaves; none straddles a checkpoint size."""
        for level, root in blocks:
            before = self.frontier.size
            self.frontier.append_subtree(level, root)
            self._check_checkpoints()
            if self.progress:
                for size in range(
                    before - before % _PROGRESS_EVERY + _PROGRESS_EVERY, self.frontier.size + 1, _PROGRESS_EVERY
                ):
                    self.progress(size)

    def _check_checkpoints(self) -> None:
        checkpoints, frontier = self.checkpoints, self.frontier
        while self.next_trusted < len(self.trusted) and self.trusted[self.next_trusted].size <= frontier.size:
            kept = self.trusted[self.next_trusted]
            if kept.size == frontier.size and kept.root_hash != frontier.root():
                self.report.divergences.append(
                    Divergence(
                        self.start_of(kept.size),
                        f"the log no longer matches the checkpoint at size {kept.size} kept outside; "
                        f"the divergence is in leaves {self.start_of(kept.size)}..{kept.size - 1}",
                        exact=False,
                    )
                )
            self.next_trusted += 1
        while self.next_checkpoint < len(checkpoints) and checkpoints[self.next_checkpoint][0] == frontier.size:
            number = self.next_checkpoint
            problem = (
                self.opened.pop(number) if number in self.opened else _note_problem(self.verifier, checkpoints[number])
            ) or _root_problem(checkpoints[number], frontier.root())
            if problem:
                self.report.divergences.append(
                    Divergence(
                        self.last_good_size,
                        f"{problem}; the divergence is in leaves {self.last_good_size}..{frontier.size - 1}",
                        exact=False,
                    )
                )
            else:
                self.last_good_size = frontier.size
            self.next_checkpoint += 1

    def start_of(self, size: int) -> int:
        """The first leaf after the last trusted or signed size that checked out."""
        return min(self.last_good_size, size)


def _leaf_rows(start: int = 0) -> Iterator[tuple[Any, ...]]:
    """(leaf_index, leaf_hash, event_id, event columns…) ordered by leaf index, from leaf
    ``start`` on (every stored leaf when 0); event columns are None when the event row is
    missing. On PostgreSQL the time comes as the canonical text (audit.events)."""
    postgres = connection.vendor == "postgresql"
    time = POSTGRES_TIME_SQL.format("e.created_at") if postgres else "e.created_at"
    sql = (
        f"SELECT l.leaf_index, l.leaf_hash, l.event_id, e.id, {time}, e.actor, e.actor_id, e.action,"  # noqa: S608
        " e.target_type, e.target_id, e.data, e.request_id, e.txid"
        " FROM audit_auditleaf l LEFT JOIN audit_auditevent e ON e.id = l.event_id"
        + (" WHERE l.leaf_index >= %s" if start else "")
        + " ORDER BY l.leaf_index"
    )
    # SQLite hands back text where PostgreSQL hands back datetimes; convert as the ORM would.
    converters = (
        [] if postgres else connection.ops.get_db_converters(AuditEvent._meta.get_field("created_at").cached_col)
    )
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, [start] if start else None)
        while rows := cursor.fetchmany(_BATCH):
            if converters:
                for row in rows:
                    created_at = row[4]
                    for converter in converters:
                        created_at = converter(created_at, None, connection)
                    yield (*row[:4], created_at, *row[5:])
            else:
                yield from rows


def trusted_checkpoint_parse(text: str) -> CheckpointNote:
    """A checkpoint kept outside the database, as a signed note: NoteError unless the log's
    key signed it for this log."""
    body = CheckpointNote.parse(checkpoint_signer().verifier().open(text))
    if body.origin != settings.AUDIT_LOG_ORIGIN:
        raise NoteError(f"the checkpoint is for {body.origin}, not {settings.AUDIT_LOG_ORIGIN}")
    return body


def verify_log(
    *,
    progress: Callable[[int], None] | None = None,
    trusted: Sequence[CheckpointNote] = (),
    since_trusted: bool = False,
) -> VerificationReport:
    """Verify the stored log. ``trusted``: checkpoints kept outside the database (parsed with
    ``trusted_checkpoint_parse``); the log must extend each. ``since_trusted``: check only the
    leaves after the largest of them, starting from its root, so that the cost is in
    proportion to the new events."""
    report = VerificationReport(trusted=len(trusted))
    kept = sorted(trusted, key=lambda body: body.size)
    postgres = connection.vendor == "postgresql"
    # PostgreSQL: one transaction, so that every query below (and the second process, which
    # imports its snapshot) sees the same log. Only when it is ours to begin: inside a
    # caller's transaction its snapshot rules, and its uncommitted rows are invisible to
    # another process. SQLite: no transaction, which would lock out writers.
    own_transaction = postgres and not connection.in_atomic_block
    with transaction.atomic() if postgres else nullcontext():
        if own_transaction:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        checkpoints = list(
            Checkpoint.objects.order_by("tree_size").values_list("tree_size", "root_hash", "signed_note")
        )
        report.checkpoints = len(checkpoints)
        walk = _Walk(
            report=report,
            verifier=checkpoint_signer().verifier(),
            checkpoints=checkpoints,
            progress=progress,
            trusted=kept,
        )
        last_key: tuple[int, int] | None = None
        start: int | None = 0
        if since_trusted and kept and kept[-1].size:
            start = _start_from_trusted(walk, kept[-1])
        # start None: the stored nodes do not reproduce the trusted root (reported); nothing to walk.
        if start:
            report.start = start
            _exact_walk(walk, start)
        elif start == 0 and postgres and FAST_PATH:
            resume, last_key = _fast_walk(walk, parallel=own_transaction)
            if resume is not None:
                _exact_walk(walk, resume)
        elif start == 0:
            _exact_walk(walk, 0)
        report.leaves = walk.frontier.size
        for size, _, _ in checkpoints[walk.next_checkpoint :]:
            report.divergences.append(
                Divergence(
                    walk.frontier.size, f"checkpoint at size {size} signs leaves the log no longer has", exact=False
                )
            )
        for body in kept[walk.next_trusted :]:
            report.divergences.append(
                Divergence(
                    walk.frontier.size,
                    f"the log has {walk.frontier.size} leaves, fewer than the checkpoint at size {body.size} "
                    "kept outside: it was rolled back",
                    exact=False,
                )
            )
        signed = checkpoints[-1][0] if checkpoints else 0
        if walk.frontier.size > signed:
            report.unsigned = walk.frontier.size - signed
            report.divergences.append(
                Divergence(
                    signed,
                    f"leaves {signed}..{walk.frontier.size - 1} are past the latest checkpoint: unsigned, not verified",
                    exact=False,
                )
            )
        if start is not None:
            _check_head(report)
            _check_chain(report, walk, start)
            # When the fast path vouches for every stored node and every event's time, the
            # checks below would find nothing; otherwise they run and say what is wrong.
            if not (walk.scanned and _scanned_nodes_match(walk)):
                _check_nodes(report, start=start or 0)
            if walk.walked_from == (start or 0):  # the walk saw every event from there on
                _report_backdated(report, walk.backdated)
            elif not (walk.scanned and _scanned_times_in_order(walk)):
                _check_backdating(report, start=start or 0)
            _check_unsequenced(report, clean_through=last_key, start=start or 0)
    return report


def _start_from_trusted(walk: _Walk, kept: CheckpointNote) -> int | None:
    """Start the walk at a trusted checkpoint: its frontier from the stored nodes, accepted
    only if it folds to the trusted root. Returns its size, or None (reported) if not."""
    from audit.selectors import fetch_nodes

    coords = range_coords(0, kept.size)
    found = fetch_nodes(coords)
    hashes = [found.get(coord) for coord in coords]
    if any(h is None for h in hashes) or fold_right([bytes(h) for h in hashes if h is not None]) != kept.root_hash:
        walk.report.divergences.append(
            Divergence(
                0,
                f"the stored tree no longer reproduces the checkpoint at size {kept.size} kept outside",
                exact=False,
            )
        )
        return None
    walk.frontier = Frontier(kept.size, [bytes(h) for h in hashes if h is not None])
    walk.last_good_size = kept.size
    walk.next_trusted = len(walk.trusted)  # all at or below it are covered by this one
    walk.next_checkpoint = sum(1 for size, _, _ in walk.checkpoints if size <= kept.size)
    last = AuditLeaf.objects.filter(leaf_index=kept.size - 1).values_list("event__txid", "event_id").first()
    if last is not None:
        walk.previous_order = (last[0] or 0, last[1])
    return kept.size


def _check_head(report: VerificationReport) -> None:
    """What the sequencer extends next: the latest checkpoint's frontier must fold to its
    signed root, and its position must be its last leaf's event (audit/sequencer.py)."""
    from audit.alarms import LogInconsistent
    from audit.sequencer import trusted_frontier_unchecked_state

    latest = Checkpoint.objects.order_by("-tree_size").first()
    if latest is None:
        return
    try:
        trusted_frontier_unchecked_state(latest)
    except LogInconsistent as problem:
        report.divergences.append(Divergence(latest.tree_size, f"the latest checkpoint: {problem.detail}", exact=False))


def _check_chain(report: VerificationReport, walk: _Walk, start: int) -> None:
    """Each checkpoint names the one before it (a ``previous`` line): none may be missing."""
    sizes = {size for size, _, _ in walk.checkpoints}
    for size, _, signed_note in walk.checkpoints:
        if size <= start:
            continue
        previous = previous_size(signed_note)
        if previous is not None and previous and previous not in sizes and previous > 0:
            report.divergences.append(
                Divergence(
                    previous,
                    f"the checkpoint at size {previous}, which the one at size {size} follows, is missing",
                    exact=False,
                )
            )


PREVIOUS_PREFIX = "previous "


def previous_size(signed_note: str) -> int | None:
    """The ``previous <size>`` extension line of a checkpoint note (None when it has none)."""
    for line in signed_note.split("\n\n", 1)[0].split("\n")[3:]:
        if line.startswith(PREVIOUS_PREFIX) and line[len(PREVIOUS_PREFIX) :].isdigit():
            return int(line[len(PREVIOUS_PREFIX) :])
    return None


# One level of stored nodes against the level below (leaves for level 1): each child in index
# order next to its left sibling (a window, one ordered index scan), every right child's pair
# hashed by the server and compared with the stored parent. Returns the parents that differ.
_NODES_SQL = """
SELECT p."index" FROM (
    SELECT {idx} AS idx, {h} AS h, lag({h}) OVER w AS prev, lag({idx}) OVER w AS prev_idx
    FROM {table} WHERE {level_filter} {idx} >= %(start)s WINDOW w AS (ORDER BY {idx})
) c JOIN audit_auditnode p ON p.level = %(level)s AND p."index" = c.idx / 2 AND p."index" >= %(parent_start)s
WHERE c.idx %% 2 = 1 AND c.prev_idx = c.idx - 1
  AND p.hash <> pg_catalog.sha256(pg_catalog.decode('01', 'hex') || c.prev || c.h)
"""


def _check_nodes(report: VerificationReport, *, start: int) -> None:
    """Every stored interior node is the hash of its two children, down to the leaves (whose
    hashes the walk checked against the events), and every node the tree needs is there.
    Nodes from ``start`` on only. A missing leaf is the walk's to report; a missing or extra
    node is found by counting each level against the number of stored leaves."""
    size = (AuditLeaf.objects.order_by("-leaf_index").values_list("leaf_index", flat=True).first() or -1) + 1
    bad: list[tuple[int, int]] = []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # A nested loop over the window's rows is what the planner picks when it misjudges the
            # levels' sizes, and it is quadratic; the hash join is linear. For these queries only.
            cursor.execute("SELECT pg_catalog.current_setting('enable_nestloop')")
            nestloop = cursor.fetchone()[0]
            cursor.execute("SELECT pg_catalog.set_config('enable_nestloop', 'off', true)")
            for level in range(1, max(size.bit_length(), 1)):
                if level == 1:
                    sql = _NODES_SQL.format(idx="leaf_index", h="leaf_hash", table="audit_auditleaf", level_filter="")
                else:
                    sql = _NODES_SQL.format(
                        idx='"index"', h="hash", table="audit_auditnode", level_filter=f"level = {level - 1} AND"
                    )
                child_start = (start >> (level - 1)) & ~1  # the first pair at or after start
                cursor.execute(sql, {"start": child_start, "level": level, "parent_start": child_start // 2})
                bad += [(level, index) for (index,) in cursor.fetchmany(100)]
            cursor.execute("SELECT pg_catalog.set_config('enable_nestloop', %s, true)", [nestloop])
    else:
        known: dict[tuple[int, int], bytes] = {
            (0, index): bytes(digest)
            for index, digest in AuditLeaf.objects.filter(leaf_index__gte=start).values_list("leaf_index", "leaf_hash")
        }
        nodes = sorted(
            (level, index, bytes(digest))
            for level, index, digest in AuditNode.objects.values_list("level", "index", "hash")
        )
        for level, index, digest in nodes:
            known[(level, index)] = digest
        for level, index, digest in nodes:
            if (index << level) < start:
                continue
            left, right = known.get((level - 1, 2 * index)), known.get((level - 1, 2 * index + 1))
            if left is not None and right is not None and node_hash(left, right) != digest:
                bad.append((level, index))
    flagged = set(bad)
    for level, index in bad:
        if (level - 1, 2 * index) in flagged or (level - 1, 2 * index + 1) in flagged:
            continue  # follows from an altered child, which is reported
        report.divergences.append(
            Divergence(
                index << level,
                f"stored node ({level}, {index}) does not match leaves {index << level}..{((index + 1) << level) - 1}",
                exact=False,
            )
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT level FROM audit_auditnode WHERE level >= %s", [max(size.bit_length(), 1)])
        levels = sorted(set(range(1, size.bit_length())) | {level for (level,) in cursor.fetchall()})
        for level in levels:
            first = start >> level
            cursor.execute(
                'SELECT count(*), min("index"), max("index") FROM audit_auditnode WHERE level = %s AND "index" >= %s',
                [level, first],
            )
            count, low, high = cursor.fetchone()
            expected = max((size >> level) - first, 0)
            if count != expected or (expected and (low != first or high != (size >> level) - 1)):
                report.divergences.append(
                    Divergence(
                        start,
                        f"level {level} of the tree has {count} stored nodes from node {first}, "
                        f"the log's {size} leaves need {expected}",
                        exact=False,
                    )
                )


def _report_backdated(report: VerificationReport, flagged: list[int]) -> None:
    tolerance = settings.AUDIT_BACKDATING_TOLERANCE_SECONDS
    for leaf_index in flagged[:100]:
        report.divergences.append(
            Divergence(
                leaf_index,
                f"leaf {leaf_index}: its event's time lies before an earlier leaf's by more than "
                f"{tolerance:.0f} s (backdated)",
            )
        )


def _check_backdating(report: VerificationReport, *, start: int) -> None:
    """An event whose time lies before an earlier leaf's by more than the tolerance was
    appended with a time it did not happen at."""
    tolerance = timedelta(seconds=settings.AUDIT_BACKDATING_TOLERANCE_SECONDS)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT leaf_index FROM ("
                " SELECT l.leaf_index, e.created_at, max(e.created_at) OVER ("
                "  ORDER BY l.leaf_index ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS latest"
                " FROM audit_auditleaf l JOIN audit_auditevent e ON e.id = l.event_id"
                " WHERE l.leaf_index >= %s) t"
                " WHERE created_at < latest - %s::interval ORDER BY leaf_index LIMIT 100",
                [max(start - 1, 0), f"{tolerance.total_seconds()} seconds"],
            )
            flagged = [row[0] for row in cursor.fetchall()]
    else:
        flagged = []
        latest = None
        rows = (
            AuditLeaf.objects.filter(leaf_index__gte=max(start - 1, 0))
            .order_by("leaf_index")
            .values_list("leaf_index", "event__created_at")
        )
        for leaf_index, created_at in rows.iterator(chunk_size=_BATCH):
            if created_at is None:
                continue
            if latest is not None and created_at < latest - tolerance:
                flagged.append(leaf_index)
            latest = created_at if latest is None else max(latest, created_at)
    for leaf_index in flagged:
        report.divergences.append(
            Divergence(
                leaf_index,
                f"leaf {leaf_index}: its event's time lies before an earlier leaf's by more than "
                f"{tolerance.total_seconds():.0f} s (backdated)",
            )
        )


def _time_value(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _note_time(walk: _Walk, position: int, time: Any) -> None:
    """Backdating, as the walk goes: the canonical time text sorts as the time does."""
    if time is None:
        return
    latest = walk.latest_time
    if latest is not None and time < latest:
        tolerance = timedelta(seconds=settings.AUDIT_BACKDATING_TOLERANCE_SECONDS)
        if _time_value(time) < _time_value(latest) - tolerance:
            walk.backdated.append(position)
        return
    walk.latest_time = time


def _exact_walk(walk: _Walk, start: int) -> None:
    """Leaf by leaf from ``start``, each joined to its event: finds and names every kind of
    divergence. The whole verification on SQLite; on PostgreSQL from where the fast path
    found something off."""
    report = walk.report
    if walk.walked_from is None:
        walk.walked_from = start
    for row in _leaf_rows(start):
        leaf_index, stored_hash, event_id, present_id = row[0], bytes(row[1]), row[2], row[3]
        position = walk.frontier.size
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
            if walk.previous_order is not None and order <= walk.previous_order:
                # One of the two is out of place: the earlier one if dropping it restores the
                # order (something was put in), else this one.
                misplaced = position - 1 if walk.before_previous is None or walk.before_previous < order else position
                report.divergences.append(
                    Divergence(misplaced, f"leaf {misplaced} is out of sequencing order (found at leaf {position})")
                )
            walk.before_previous, walk.previous_order = walk.previous_order, order
            _note_time(walk, position, event_row[1])
        walk.append(recomputed)


def _fast_walk(walk: _Walk, *, parallel: bool) -> tuple[int | None, tuple[int, int] | None]:
    """PostgreSQL: check leaves with audit/scan.py (the server hashes every event; two ordered
    scans, no join), on two connections for a long log, as far as everything is as the
    sequencer wrote it. Returns the leaf to go on from with the exact walk (None when every
    leaf checked out) and the sequencing key of the last leaf's event."""
    from audit import scan

    cuts = [size for size, _, _ in walk.checkpoints]
    tolerance = timedelta(seconds=settings.AUDIT_BACKDATING_TOLERANCE_SECONDS)
    raw = connection.connection
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(leaf_index), max(leaf_index), pg_catalog.current_setting('server_encoding')"
            " FROM audit_auditleaf"
        )
        lowest, highest, encoding = cursor.fetchone()
    if highest is None:
        return None, None  # no leaves
    if lowest < 0 or encoding != "UTF8":
        # A leaf below 0 is for the exact walk to report; the server's hashes are the UTF-8
        # bytes only in a UTF8 database.
        return 0, None
    size = highest + 1
    split = size // 2 if parallel and size >= max(PARALLEL_MIN_LEAVES, 2) else None
    if split is None:
        first = scan.scan(raw, start=0, stop=size, cuts=cuts, on_blocks=walk.append_blocks, tolerance=tolerance)
        return _resume_point([first], walk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_export_snapshot()")
        snapshot = cursor.fetchone()[0]
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("context", "cursor_factory")}
    stopping = threading.Event()
    # The second range's checkpoint notes are opened while the last scan still runs, by
    # whichever thread is done with its own first (this one or the worker's), rather than
    # here after both scans, with nothing beside them (about 0.13 ms each).
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for number, (checkpoint_size, _, _) in enumerate(walk.checkpoints):
        if checkpoint_size > split:
            pending.put(number)

    def open_pending() -> None:
        while not stopping.is_set():
            try:
                number = pending.get_nowait()
            except queue.Empty:
                return
            walk.opened[number] = _note_problem(walk.verifier, walk.checkpoints[number])

    worker = scan.Worker(
        params=params, snapshot=snapshot, start=split, stop=size, cuts=cuts, tolerance=tolerance, then=open_pending
    )
    try:
        first = scan.scan(raw, start=0, stop=split, cuts=cuts, on_blocks=walk.append_blocks, tolerance=tolerance)
        if first.stopped:
            return _resume_point([first], walk)  # the other half is not needed (closing cancels it)
        open_pending()
        try:
            second = worker.result()
        except Exception:  # the second connection could not do its part: do it here
            logger.warning("verification: the second connection failed; checking its leaves here", exc_info=True)
            second = scan.scan(raw, start=split, stop=size, cuts=cuts, tolerance=tolerance)
    finally:
        stopping.set()
        worker.close()
    return _resume_point([first, second], walk)


def _resume_point(parts: list[Any], walk: _Walk) -> tuple[int | None, tuple[int, int] | None]:
    """Apply the parts' blocks in order as long as each part is whole and the next part
    starts with the event that follows; where that fails the exact walk takes over."""
    for number, part in enumerate(parts):
        if part.blocks:
            walk.append_blocks(part.blocks)
        if part.tail:
            walk.before_previous = part.tail[-2] if len(part.tail) > 1 else walk.previous_order
            walk.previous_order = part.tail[-1]
        following = parts[number + 1] if number + 1 < len(parts) else None
        if part.stopped or (
            following is not None and (part.end != following.start or part.next_event != following.first_event)
        ):
            return part.end, None
    walk.scanned = parts
    return None, walk.previous_order


def _scanned_nodes_match(walk: _Walk) -> bool:
    """Every stored node of the tree is the recomputed one and there is no other: what
    ``_check_nodes`` would then find nothing against. The scan compared the nodes inside its
    spans; folding the spans finds the nodes over several of them, compared here, and the
    levels must hold no node past the tree's size."""
    if not all(part.nodes_ok for part in walk.scanned):
        return False
    folded = Frontier(size=0, hashes=[])
    expected: dict[tuple[int, int], bytes] = {}
    for part in walk.scanned:
        for level, root in part.spans:
            expected.update(((level, index), digest) for level, index, digest in folded.append_subtree(level, root))
    size = folded.size
    if size != walk.frontier.size:
        return False
    bits = size.bit_length()
    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT n.level, n."index", n.hash FROM audit_auditnode n JOIN unnest(%s::integer[], %s::bigint[])'
            ' AS k(level, "index") ON n.level = k.level AND n."index" = k."index"',
            [[level for level, _ in expected], [index for _, index in expected]],
        )
        for level, index, digest in cursor.fetchall():
            if expected.pop((level, index), None) != bytes(digest):
                return False  # differs, or is there twice
        if expected:
            return False  # missing
        # No node above the tree's top level, none past the tree's size on any level: the
        # highest of each, one backward index probe apiece (asked as "is there any node
        # past", the conditions joined by OR, PostgreSQL scans the whole node table, about a
        # million rows here, after both scans, with nothing beside it).
        highest_sql = ', (SELECT max("index") FROM audit_auditnode WHERE level = %s)'
        cursor.execute(
            'SELECT (SELECT max(level) FROM audit_auditnode WHERE "index" >= 0)' + highest_sql * (bits - 1),
            list(range(1, bits)),
        )
        top, *highest = cursor.fetchone()
        return (top is None or top < max(bits, 1)) and all(
            high is None or high < size >> level for level, high in enumerate(highest, start=1)
        )


def _scanned_times_in_order(walk: _Walk) -> bool:
    """No event's time lies before an earlier leaf's by more than the tolerance: what
    ``_check_backdating`` would then find nothing against."""
    from audit.scan import Scan

    tolerance = timedelta(seconds=settings.AUDIT_BACKDATING_TOLERANCE_SECONDS)
    times = Scan(start=0)
    for part in walk.scanned:
        times.note_times(part.drop, part.earliest, part.latest)
    return times.drop is None or times.drop >= -tolerance


def _note_problem(verifier: NoteVerifier, checkpoint: tuple[int, Any, str]) -> str | None:
    """What is wrong with a checkpoint on its own: its signature or body, or a stored size or
    root that is not what was signed."""
    size, stored_root, signed_note = checkpoint
    try:
        body = CheckpointNote.parse(verifier.open(signed_note))
    except NoteError as error:
        return f"checkpoint at size {size} has a bad signature or body ({error})"
    if body.size != size or body.root_hash != bytes(stored_root) or body.origin != settings.AUDIT_LOG_ORIGIN:
        return f"checkpoint at size {size}: stored size or root differ from what was signed"
    return None


def _root_problem(checkpoint: tuple[int, Any, str], root: bytes) -> str | None:
    """A checkpoint whose note checks out (``_note_problem``) against the recomputed root: its
    stored root is the signed one."""
    size, stored_root, _ = checkpoint
    if bytes(stored_root) != root:
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


def _check_unsequenced(
    report: VerificationReport, *, clean_through: tuple[int, int] | None = None, start: int = 0
) -> None:
    """Events that are not in the log but sort before the sequencer's position were slipped in
    behind its back: the sequencer will never take them.

    ``clean_through``: the fast path paired every leaf with the events in sequencing order up
    to the event with this key, none of them without a transaction id. Every event before
    that key then has a leaf; unless some event lacks a transaction id or the sequencer's
    position lies beyond it, nothing can have slipped in, and the search is skipped."""
    latest = Checkpoint.objects.order_by("-tree_size").first()
    if latest is None or latest.last_event_id is None:
        return
    if (
        clean_through is not None
        and latest.last_txid is not None
        and (latest.last_txid, latest.last_event_id) <= clean_through
        and not AuditEvent.objects.filter(txid__isnull=True).exists()
    ):
        return
    cursor = _before(latest.last_txid, latest.last_event_id)
    if latest.last_txid is not None:
        cursor |= Q(txid__isnull=True)  # PostgreSQL stamps every event; a missing stamp is forged
    slipped_in = AuditEvent.objects.filter(cursor, leaf__isnull=True).order_by("id")
    if start:
        # From a trusted checkpoint: only events written after its last one (a new id).
        first = AuditLeaf.objects.filter(leaf_index=start - 1).values_list("event_id", flat=True).first()
        if first is not None:
            slipped_in = slipped_in.filter(id__gt=first)
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
