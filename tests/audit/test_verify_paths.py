"""On PostgreSQL verification first checks the log with leaf hashes the database server
computes (audit/scan.py), on two connections for a long log, and goes on leaf by leaf from
the first chunk where anything is off. Whatever was done to the log, the report must be
exactly the one of the leaf-by-leaf walk alone: same leaves, checkpoints and divergences in
the same order, same progress calls. The server's hashes are those of canonical_event
(tests/audit/test_event_sql.py); here, events with adversarial text whose leaf hash was
rewritten by either side must get the same report from every path, and a server building
other bytes would not."""

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction

from audit import events, record, scan, verification
from audit.models import AuditEvent, AuditLeaf
from audit.selectors import event_canonical_bytes
from audit.sequencer import sequence_pending
from audit.verification import VerificationReport, verify_log
from tests.audit.support import triggers_bypassed
from tests.factories import FACTORY_ACTOR
from tlog.merkle import leaf_hash

pytestmark = [pytest.mark.django_db(transaction=True)]

EVENTS = 37


@pytest.fixture
def log(settings: Any, on_postgres: None) -> list[int]:
    """37 events sequenced 5 at a time; the scan checks 4 leaves a query, so chunks,
    checkpoints and the split between the two connections (at leaf 18) fall in different
    places. Returns the event id at each leaf index."""
    settings.AUDIT_SEQUENCE_ON_COMMIT = False
    for number in range(EVENTS):
        with transaction.atomic():
            record(actor=FACTORY_ACTOR, action="test:event", target=("test.thing", str(number)), data={"n": number})
    # An open transaction anywhere on the server (another test run) holds the sequencer's
    # horizon back for a while; any checkpoint layout will do.
    deadline = time.monotonic() + 60
    while AuditLeaf.objects.count() < EVENTS and time.monotonic() < deadline:
        sequence_pending(batch_size=5)
        time.sleep(0.05)
    leaves = list(AuditLeaf.objects.order_by("leaf_index").values_list("event_id", flat=True))
    assert len(leaves) == EVENTS
    return leaves


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan, "CHUNK", 4)
    monkeypatch.setattr(verification, "_PROGRESS_EVERY", 3)


def _run(mode: str, monkeypatch: pytest.MonkeyPatch) -> tuple[VerificationReport, list[int]]:
    with monkeypatch.context() as patch:
        patch.setattr(verification, "FAST_PATH", mode != "exact")
        patch.setattr(verification, "PARALLEL_MIN_LEAVES", 1 if mode == "parallel" else 10**9)
        calls: list[int] = []
        report = verify_log(progress=calls.append)
    return report, calls


MODES = ("fast", "parallel")  # the server's hashes on one connection, on two


def _all_paths_agree(monkeypatch: pytest.MonkeyPatch) -> VerificationReport:
    exact, exact_calls = _run("exact", monkeypatch)
    for mode in MODES:
        report, calls = _run(mode, monkeypatch)
        assert (report.leaves, report.checkpoints, report.divergences) == (
            exact.leaves,
            exact.checkpoints,
            exact.divergences,
        ), mode
        assert calls == exact_calls, mode
    return exact


def _edit(index: int) -> Callable[[list[int]], None]:
    def tamper(log: list[int]) -> None:
        with triggers_bypassed() as cursor:
            cursor.execute("UPDATE audit_auditevent SET data = %s WHERE id = %s", ['{"n":-1}', log[index]])

    return tamper


def _delete_event(index: int) -> Callable[[list[int]], None]:
    def tamper(log: list[int]) -> None:
        with triggers_bypassed() as cursor:
            cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [log[index]])

    return tamper


def _delete_leaf_and_event(index: int) -> Callable[[list[int]], None]:
    def tamper(log: list[int]) -> None:
        with triggers_bypassed() as cursor:
            cursor.execute("DELETE FROM audit_auditleaf WHERE leaf_index = %s", [index])
            cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [log[index]])

    return tamper


def _swap_leaves(first: int, second: int) -> Callable[[list[int]], None]:
    def tamper(log: list[int]) -> None:
        with triggers_bypassed() as cursor:
            cursor.execute("UPDATE audit_auditleaf SET leaf_index = -1 WHERE leaf_index = %s", [first])
            cursor.execute("UPDATE audit_auditleaf SET leaf_index = %s WHERE leaf_index = %s", [first, second])
            cursor.execute("UPDATE audit_auditleaf SET leaf_index = %s WHERE leaf_index = -1", [second])

    return tamper


def _forge(before: int, *, txid_shift: int | None, event_id: int) -> Callable[[list[int]], None]:
    """An event that sorts next to the one at leaf ``before`` but has no leaf."""

    def tamper(log: list[int]) -> None:
        txid = AuditEvent.objects.get(pk=log[before]).txid
        with triggers_bypassed() as cursor:
            cursor.execute(
                "INSERT INTO audit_auditevent (id, created_at, actor, actor_id, action, target_type, target_id,"
                " data, request_id, txid) SELECT %s, created_at, actor, actor_id, 'test:event', 'test.thing',"
                " 'forged', '{}', '', %s FROM audit_auditevent WHERE id = %s",
                [event_id, None if txid is None or txid_shift is None else txid + txid_shift, log[before]],
            )

    return tamper


def _null_txid(index: int) -> Callable[[list[int]], None]:
    def tamper(log: list[int]) -> None:
        with triggers_bypassed() as cursor:
            cursor.execute("UPDATE audit_auditevent SET txid = NULL WHERE id = %s", [log[index]])

    return tamper


def _drop_last_leaves(count: int) -> Callable[[list[int]], None]:
    def tamper(log: list[int]) -> None:
        with triggers_bypassed() as cursor:
            cursor.execute("DELETE FROM audit_auditleaf WHERE leaf_index >= %s", [EVENTS - count])

    return tamper


def _rewrite_checkpoint_root(size: int) -> Callable[[list[int]], None]:
    def tamper(log: list[int]) -> None:
        with triggers_bypassed() as cursor:
            cursor.execute("UPDATE audit_checkpoint SET root_hash = %s WHERE tree_size = %s", [b"\0" * 32, size])

    return tamper


def _leaf_below_zero(log: list[int]) -> None:
    with triggers_bypassed() as cursor:  # no event 10**7: the foreign key is off too
        cursor.execute(
            "INSERT INTO audit_auditleaf (leaf_index, event_id, leaf_hash) VALUES (-1, %s, %s)", [10**7, b"\1" * 32]
        )


def _short_leaf_hash(index: int) -> Callable[[list[int]], None]:
    def tamper(log: list[int]) -> None:
        with triggers_bypassed() as cursor:
            cursor.execute(
                "UPDATE audit_auditleaf SET leaf_hash = substring(leaf_hash, 1, 31) WHERE leaf_index = %s", [index]
            )

    return tamper


def _leaf_hash_shifted(index: int) -> Callable[[list[int]], None]:
    """The last byte of one leaf's hash moved to the front of the next one's: laid end to end,
    the stored hashes are what they were."""

    def tamper(log: list[int]) -> None:
        with triggers_bypassed() as cursor:
            cursor.execute(
                "UPDATE audit_auditleaf SET leaf_hash = CASE leaf_index"
                " WHEN %s THEN substring(leaf_hash, 1, 31)"
                " ELSE (SELECT substring(leaf_hash, 32, 1) FROM audit_auditleaf WHERE leaf_index = %s) || leaf_hash"
                " END WHERE leaf_index IN (%s, %s)",
                [index, index, index, index + 1],
            )

    return tamper


ADVERSARIAL = 'user:"ev\\il"\x01\x1f\n\t\x7f\u2028\u2029😀\u202e\u05e9\u05dc\u05d5\u05dd'


def _adversarial_event(index: int, *, hashed_by: str) -> Callable[[list[int]], None]:
    """An event's text rewritten with everything JSON has to escape (and things it must not),
    and its leaf hash rewritten to match, as computed by the server or by Python: the
    leaf then matches on either path if, and only if, both build the same bytes. (The
    checkpoints still see the change.)"""

    def tamper(log: list[int]) -> None:
        with triggers_bypassed() as cursor:
            cursor.execute(
                "UPDATE audit_auditevent SET actor = %s, target_id = %s, request_id = %s WHERE id = %s",
                [ADVERSARIAL, ADVERSARIAL[5:], "\\" * 64, log[index]],
            )
            if hashed_by == "postgres":
                cursor.execute(
                    "UPDATE audit_auditleaf SET leaf_hash = (SELECT "  # noqa: S608 - constants only
                    + events.POSTGRES_LEAF_HASH_SQL
                    + " FROM audit_auditevent WHERE id = %s) WHERE leaf_index = %s",
                    [log[index], index],
                )
            else:
                digest = leaf_hash(event_canonical_bytes(AuditEvent.objects.get(pk=log[index])))
                cursor.execute("UPDATE audit_auditleaf SET leaf_hash = %s WHERE leaf_index = %s", [digest, index])

    return tamper


def _node(sql: str, level: int, index: int, *values: Any) -> Callable[[list[int]], None]:
    """A stored node changed (``sql`` with ``level`` and ``index`` after ``values``)."""

    def tamper(log: list[int]) -> None:
        with triggers_bypassed() as cursor:
            cursor.execute(sql, [*values, level, index])

    return tamper


def _alter_node(level: int, index: int) -> Callable[[list[int]], None]:
    return _node('UPDATE audit_auditnode SET hash = %s WHERE level = %s AND "index" = %s', level, index, b"\1" * 32)


def _backdate(index: int) -> Callable[[list[int]], None]:
    """An event's time moved an hour back, and its leaf hash rewritten to match (by the
    server), so that the leaves check out and only the times are off."""

    def tamper(log: list[int]) -> None:
        with triggers_bypassed() as cursor:
            cursor.execute(
                "UPDATE audit_auditevent SET created_at = created_at - interval '1 hour' WHERE id = %s", [log[index]]
            )
            cursor.execute(
                "UPDATE audit_auditleaf SET leaf_hash = (SELECT "  # noqa: S608 - constants only
                + events.POSTGRES_LEAF_HASH_SQL
                + " FROM audit_auditevent WHERE id = %s) WHERE leaf_index = %s",
                [log[index], index],
            )

    return tamper


def _untouched(log: list[int]) -> None:
    pass


TAMPERINGS: dict[str, Callable[[list[int]], None]] = {
    "untouched": _untouched,
    "edit first leaf": _edit(0),
    "edit in the first half": _edit(6),
    "edit at the split": _edit(18),
    "edit in the second half": _edit(30),
    "edit last leaf": _edit(EVENTS - 1),
    "two edits": lambda log: (_edit(3)(log), _edit(25)(log)),
    "delete event": _delete_event(11),
    "delete event at the split": _delete_event(18),
    "delete leaf and event": _delete_leaf_and_event(9),
    "delete leaf and event in the second half": _delete_leaf_and_event(27),
    "swap leaves across the split": _swap_leaves(4, 29),
    "swap neighbours": _swap_leaves(20, 21),
    "forged event behind the sequencer": _forge(0, txid_shift=-1, event_id=-5),
    "forged event between two leaves": _forge(12, txid_shift=0, event_id=10**6),
    "forged event right before the split": _forge(18, txid_shift=0, event_id=-7),
    "event without a transaction id": _null_txid(15),
    "unsequenced event without a transaction id": _forge(36, txid_shift=None, event_id=10**6 + 1),
    "last leaves gone": _drop_last_leaves(4),
    "checkpoint root rewritten": _rewrite_checkpoint_root(20),
    "leaf below zero": _leaf_below_zero,
    "leaf hash cut short": _short_leaf_hash(9),
    "leaf hash shifted into the next one": _leaf_hash_shifted(9),
    "leaf hash shifted across the split": _leaf_hash_shifted(17),
    "adversarial text, leaf hash by the server": _adversarial_event(7, hashed_by="postgres"),
    "adversarial text, leaf hash by Python": _adversarial_event(7, hashed_by="python"),
    "adversarial text after the split, leaf hash by the server": _adversarial_event(30, hashed_by="postgres"),
    "stored node inside a chunk altered": _alter_node(1, 3),
    "stored node over two chunks altered": _alter_node(3, 1),
    "stored node over the split altered": _alter_node(2, 4),
    "stored node at the top altered": _alter_node(5, 0),
    "stored node cut short": _node(
        'UPDATE audit_auditnode SET hash = substring(hash, 1, 31) WHERE level = %s AND "index" = %s', 1, 0
    ),
    "stored node inside a chunk deleted": _node('DELETE FROM audit_auditnode WHERE level = %s AND "index" = %s', 2, 5),
    "stored node over the split deleted": _node('DELETE FROM audit_auditnode WHERE level = %s AND "index" = %s', 3, 2),
    "stored node past the end": _node(
        'INSERT INTO audit_auditnode (hash, level, "index") VALUES (%s, %s, %s)', 1, EVENTS // 2, b"\1" * 32
    ),
    "stored node above the tree": _node(
        'INSERT INTO audit_auditnode (hash, level, "index") VALUES (%s, %s, %s)', 6, 0, b"\1" * 32
    ),
    "backdated event": _backdate(13),
    "backdated event first in a chunk": _backdate(8),
    "backdated event right after the split": _backdate(18),
}


@pytest.mark.parametrize("tampering", list(TAMPERINGS), ids=list(TAMPERINGS))
def test_every_path_gives_the_same_report(tampering: str, log: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    TAMPERINGS[tampering](log)

    report = _all_paths_agree(monkeypatch)

    assert report.ok == (tampering == "untouched")


@pytest.mark.parametrize("tampering", ["untouched", "backdated event"])
def test_the_paths_agree_when_every_chunk_spans_more_than_the_tolerance(
    tampering: str, log: list[int], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """With no tolerance every chunk whose events' times differ at all goes through the
    window over its events (a chunk within the tolerance gives its span instead)."""
    settings.AUDIT_BACKDATING_TOLERANCE_SECONDS = 0
    TAMPERINGS[tampering](log)

    report = _all_paths_agree(monkeypatch)

    assert report.ok == (tampering == "untouched")


def test_an_untouched_log_is_checked_by_the_server_alone(log: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_exact_walk(walk: object, start: int) -> None:
        raise AssertionError(f"the exact walk ran from leaf {start}")

    def no_second_read(report: VerificationReport, *, start: int) -> None:
        raise AssertionError("the stored nodes or the events' times were read again")

    monkeypatch.setattr(verification, "_exact_walk", no_exact_walk)
    monkeypatch.setattr(verification, "_check_nodes", no_second_read)
    monkeypatch.setattr(verification, "_check_backdating", no_second_read)
    for mode in MODES:
        report, _ = _run(mode, monkeypatch)
        assert report.ok, mode
        assert report.leaves == EVENTS


def test_leaves_stored_out_of_order_are_still_checked_by_the_server_alone(
    log: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table's physical order is not the log's: after a restore, a VACUUM FULL or a
    CLUSTER the leaf rows may come back in any order, and the server must still assemble each
    chunk in leaf order (else every chunk differs and verification falls back to the walk,
    four times slower on a large log)."""
    with triggers_bypassed() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE leaves_kept AS SELECT * FROM audit_auditleaf")
        cursor.execute("DELETE FROM audit_auditleaf")
        cursor.execute("INSERT INTO audit_auditleaf SELECT * FROM leaves_kept ORDER BY leaf_index DESC")
        cursor.execute("DROP TABLE leaves_kept")
    with connection.cursor() as cursor:
        cursor.execute("SELECT leaf_index FROM audit_auditleaf LIMIT 1")  # a sequential scan of a small table
        assert cursor.fetchone() == (EVENTS - 1,)
    test_an_untouched_log_is_checked_by_the_server_alone(log, monkeypatch)


def test_a_server_that_built_other_bytes_would_be_caught(log: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """What the report comparison above is worth: were the server's bytes not canonical_event's
    (here, strings left unescaped), an event whose leaf hash was rewritten by the server would
    pass the fast path and fail the exact walk."""
    unescaped = (
        "pg_catalog.sha256(pg_catalog.decode('00', 'hex') || pg_catalog.convert_to("
        + events._event_sql(escape=False)
        + ", 'UTF8'))"
    )
    monkeypatch.setattr(events, "POSTGRES_LEAF_HASH_SQL", unescaped)
    _adversarial_event(7, hashed_by="postgres")(log)
    monkeypatch.setattr(scan, "_FIRST_CHUNK_SQL", scan._CHUNK_SQL.format(hash=unescaped, after=">="))
    monkeypatch.setattr(scan, "_NEXT_CHUNK_SQL", scan._CHUNK_SQL.format(hash=unescaped, after=">"))

    exact, _ = _run("exact", monkeypatch)
    fast, _ = _run("fast", monkeypatch)

    assert "leaf 7: event" in exact.divergences[0].reason
    assert all(d.leaf_index != 7 or not d.exact for d in fast.divergences)
    assert fast.divergences != exact.divergences


def test_a_failed_second_connection_is_made_up_for_on_the_first(
    log: list[int], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: scan.Worker) -> scan.Scan:
        raise RuntimeError("no second connection here")

    monkeypatch.setattr(scan.Worker, "result", broken)

    report, _ = _run("parallel", monkeypatch)

    assert report.ok
    assert report.leaves == EVENTS
    assert "the second connection failed" in caplog.text


def test_a_second_connection_that_cannot_connect_is_made_up_for(
    log: list[int], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = scan.Worker.__init__

    def unreachable(self: scan.Worker, *, params: dict[str, Any], **kwargs: Any) -> None:
        real(self, params={**params, "port": 1}, **kwargs)

    monkeypatch.setattr(scan.Worker, "__init__", unreachable)

    report, _ = _run("parallel", monkeypatch)

    assert report.ok
    assert report.leaves == EVENTS
    assert "the second connection failed" in caplog.text


def test_inside_a_callers_transaction_it_stays_on_one_connection(
    log: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_worker(**kwargs: Any) -> None:
        raise AssertionError("a second connection cannot see the caller's transaction")

    monkeypatch.setattr(scan, "Worker", no_worker)
    monkeypatch.setattr(verification, "PARALLEL_MIN_LEAVES", 1)
    with transaction.atomic():
        record(actor=FACTORY_ACTOR, action="test:late", target=("test.thing", "late"), data={})
        report = verify_log()

    assert report.ok
    assert report.leaves == EVENTS


def test_postgres_formats_event_times_exactly_as_python_does(on_postgres: None) -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from django.db import connection

    from audit.events import POSTGRES_TIME_SQL, format_time

    times = [
        datetime(2026, 11, 27, 7, 0, 0, 0, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1969, 7, 20, 20, 17, 40, 120000, tzinfo=UTC),
        datetime(2030, 3, 31, 1, 30, 0, 500, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
    ]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL TIME ZONE 'Asia/Kolkata'")  # the session's zone must not matter
        for value in times:
            cursor.execute("SELECT " + POSTGRES_TIME_SQL.format("%s::timestamptz"), [value])
            assert cursor.fetchone()[0] == format_time(value)
