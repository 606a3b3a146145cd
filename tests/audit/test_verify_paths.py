"""On PostgreSQL verification first checks the log with two ordered scans (audit/scan.py),
in two processes for a long log, and goes on leaf by leaf from the first thing that is off.
Whatever was done to the log, the report must be exactly the one of the leaf-by-leaf walk
alone: same leaves, checkpoints and divergences in the same order, same progress calls."""

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from audit import record, scan, verification
from audit.models import AuditEvent, AuditLeaf
from audit.sequencer import sequence_pending
from audit.verification import VerificationReport, verify_log
from tests.audit.support import triggers_bypassed
from tests.factories import FACTORY_ACTOR

pytestmark = [pytest.mark.django_db(transaction=True)]

EVENTS = 37


@pytest.fixture
def log(settings: Any, on_postgres: None) -> list[int]:
    """37 events sequenced 5 at a time; the scan reads 4 rows a fetch and folds at least every
    8 leaves, so batches, checkpoints and the split between the two processes (at leaf 18)
    fall in different places. Returns the event id at each leaf index."""
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
    monkeypatch.setattr(scan, "BATCH", 4)
    monkeypatch.setattr(scan, "_FLUSH", 8)
    monkeypatch.setattr(verification, "_PROGRESS_EVERY", 3)


def _run(mode: str, monkeypatch: pytest.MonkeyPatch) -> tuple[VerificationReport, list[int]]:
    with monkeypatch.context() as patch:
        patch.setattr(verification, "FAST_PATH", mode != "exact")
        patch.setattr(verification, "PARALLEL_MIN_LEAVES", 1 if mode == "parallel" else 10**9)
        calls: list[int] = []
        report = verify_log(progress=calls.append)
    return report, calls


def _all_paths_agree(monkeypatch: pytest.MonkeyPatch) -> VerificationReport:
    exact, exact_calls = _run("exact", monkeypatch)
    for mode in ("fast", "parallel"):
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
}


@pytest.mark.parametrize("tampering", list(TAMPERINGS), ids=list(TAMPERINGS))
def test_every_path_gives_the_same_report(tampering: str, log: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    TAMPERINGS[tampering](log)

    report = _all_paths_agree(monkeypatch)

    assert report.ok == (tampering == "untouched")


def test_a_failed_second_process_is_made_up_for_in_process(
    log: list[int], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: scan.Worker) -> scan.Scan:
        raise RuntimeError("no second process here")

    monkeypatch.setattr(scan.Worker, "result", broken)

    report, _ = _run("parallel", monkeypatch)

    assert report.ok
    assert report.leaves == EVENTS
    assert "the second process failed" in caplog.text


def test_inside_a_callers_transaction_it_stays_in_process(log: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_worker(**kwargs: Any) -> None:
        raise AssertionError("a second process cannot see the caller's transaction")

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
