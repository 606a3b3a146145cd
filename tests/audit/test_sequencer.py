"""The sequencer turns committed events into a dense Merkle log with signed checkpoints."""

import threading
from collections.abc import Callable

import pytest
from django.db import connection, connections, transaction

from audit import record
from audit.events import canonical_event
from audit.models import AuditEvent, AuditLeaf, Checkpoint
from audit.sequencer import sequence_pending
from audit.signing import checkpoint_signer
from audit.verification import verify_log
from tests.factories import FACTORY_ACTOR
from tlog.merkle import leaf_hash, root_of
from tlog.note import Checkpoint as CheckpointNote

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def sequence_by_hand(settings: object) -> None:
    """Most tests here drive the sequencer themselves, as beat would."""
    settings.AUDIT_SEQUENCE_ON_COMMIT = False  # type: ignore[attr-defined]


def record_events(count: int, *, prefix: str = "e") -> None:
    for number in range(count):
        with transaction.atomic():
            record(
                actor=FACTORY_ACTOR, action="test:event", target=("test.thing", f"{prefix}{number}"), data={"n": number}
            )


@pytest.mark.requirement("PR-10")
def test_committed_events_become_dense_leaves_in_commit_order() -> None:
    record_events(5)

    added = sequence_pending()

    assert added == 5
    leaves = list(AuditLeaf.objects.order_by("leaf_index").values_list("leaf_index", "event_id"))
    event_ids = list(AuditEvent.objects.order_by("id").values_list("id", flat=True))
    assert [index for index, _ in leaves] == [0, 1, 2, 3, 4]
    assert [event for _, event in leaves] == event_ids


def test_a_leaf_hash_covers_the_canonical_event_bytes() -> None:
    record_events(1)
    sequence_pending()
    event = AuditEvent.objects.get()

    expected = leaf_hash(
        canonical_event(
            event_id=event.id,
            time=event.created_at,
            actor=event.actor,
            actor_id=event.actor_id,
            action=event.action,
            target_type=event.target_type,
            target_id=event.target_id,
            data=event.data,
            request_id=event.request_id,
        )
    )

    assert bytes(AuditLeaf.objects.get().leaf_hash) == expected
    body = canonical_event(
        event_id=7,
        time="2026-11-27T07:00:00.000000Z",
        actor="user:a",
        actor_id=None,
        action="x:y",
        target_type="t",
        target_id="1",
        data='{"a":"é"}',
        request_id="",
    )
    assert (
        body
        == (
            '{"action":"x:y","actor":"user:a","actor_id":null,"data":{"a":"é"},"id":7,'
            '"request_id":"","target_id":"1","target_type":"t","time":"2026-11-27T07:00:00.000000Z"}'
        ).encode()
    )


@pytest.mark.requirement("PR-10")
def test_each_step_signs_a_checkpoint_over_the_whole_tree() -> None:
    record_events(3)
    sequence_pending()
    record_events(2, prefix="f")
    sequence_pending()

    checkpoints = list(Checkpoint.objects.order_by("tree_size"))
    hashes = [bytes(h) for h in AuditLeaf.objects.order_by("leaf_index").values_list("leaf_hash", flat=True)]
    verifier = checkpoint_signer().verifier()

    assert [c.tree_size for c in checkpoints] == [3, 5]
    for checkpoint in checkpoints:
        note = CheckpointNote.parse(verifier.open(checkpoint.signed_note))
        assert note.origin == "releasegate.test/audit-log"
        assert note.size == checkpoint.tree_size
        assert note.root_hash == root_of(hashes[: checkpoint.tree_size]) == bytes(checkpoint.root_hash)
        assert note.extensions[0].startswith("time 20")


def test_sequencing_again_adds_nothing() -> None:
    record_events(2)
    sequence_pending()

    assert sequence_pending() == 0
    assert Checkpoint.objects.count() == 1


def test_small_batches_give_the_same_log_as_one_big_batch() -> None:
    record_events(7)

    sequence_pending(batch_size=3)

    assert list(Checkpoint.objects.order_by("tree_size").values_list("tree_size", flat=True)) == [3, 6, 7]
    hashes = [bytes(h) for h in AuditLeaf.objects.order_by("leaf_index").values_list("leaf_hash", flat=True)]
    assert bytes(Checkpoint.objects.get(tree_size=7).root_hash) == root_of(hashes)
    assert verify_log().ok


def test_with_eager_sequencing_an_event_is_in_the_log_right_after_commit(settings: object) -> None:
    settings.AUDIT_SEQUENCE_ON_COMMIT = True  # type: ignore[attr-defined]

    with transaction.atomic():
        record(actor=FACTORY_ACTOR, action="test:one", target=("x", "1"), data={})
        record(actor=FACTORY_ACTOR, action="test:two", target=("x", "2"), data={})

    assert AuditLeaf.objects.count() == 2
    assert Checkpoint.objects.count() == 1


def test_a_rolled_back_event_never_reaches_the_log(settings: object) -> None:
    settings.AUDIT_SEQUENCE_ON_COMMIT = True  # type: ignore[attr-defined]

    def record_then_fail() -> None:
        with transaction.atomic():
            record(actor=FACTORY_ACTOR, action="test:lost", target=("x", "1"), data={})
            raise RuntimeError("the change fails after its event was written")

    with pytest.raises(RuntimeError):
        record_then_fail()

    record_events(1)
    sequence_pending()
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["test:event"]
    assert AuditLeaf.objects.count() == 1


def _in_threads(count: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def run(number: int) -> None:
        try:
            work(number)
        except BaseException as error:  # reported to the test below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_sixteen_concurrent_writers_with_two_sequencers_give_one_dense_log(on_postgres: None) -> None:
    writers, per_writer = 16, 500
    done = threading.Event()

    def sequencer_loop() -> None:
        while not done.is_set():
            sequence_pending()

    sequencers = [threading.Thread(target=lambda: (sequencer_loop(), connections.close_all())) for _ in range(2)]
    for thread in sequencers:
        thread.start()
    try:
        _in_threads(writers, lambda number: record_events(per_writer, prefix=f"w{number}-"))
    finally:
        done.set()
        for thread in sequencers:
            thread.join()
    sequence_pending()

    assert AuditEvent.objects.count() == writers * per_writer
    leaves = list(AuditLeaf.objects.order_by("leaf_index").values_list("leaf_index", "event_id"))
    assert [index for index, _ in leaves] == list(range(writers * per_writer))
    assert len({event for _, event in leaves}) == writers * per_writer
    report = verify_log()
    assert report.ok, report.divergences[:3]
    assert report.leaves == writers * per_writer


def test_a_transaction_that_commits_late_is_sequenced_after_the_ones_before_it(on_postgres: None) -> None:
    """An event with a lower id whose transaction commits after later ids were sequenced must
    still get a leaf (the xmin horizon holds the sequencer back until it commits)."""
    started = threading.Event()
    release = threading.Event()

    def slow_writer() -> None:
        with transaction.atomic():
            record(actor=FACTORY_ACTOR, action="test:slow", target=("x", "slow"), data={})
            started.set()
            release.wait(10)
        connections.close_all()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    started.wait(10)
    record_events(3)
    sequence_pending()
    assert AuditLeaf.objects.count() == 0  # the open transaction holds the horizon back
    release.set()
    thread.join()
    sequence_pending()

    assert AuditLeaf.objects.count() == 4
    slow = AuditEvent.objects.get(action="test:slow")
    assert slow.id < max(AuditEvent.objects.values_list("id", flat=True))
    assert verify_log().ok
    assert connection.vendor == "postgresql"
