"""Tampering with the stored trail, as someone with full database rights would, is caught by
`manage.py audit_verify`, which names the first divergent leaf; and a checkpoint kept outside
the service no longer matches."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from audit import record
from audit.models import AuditEvent, AuditLeaf, AuditNode, Checkpoint
from audit.selectors import _fetch_nodes as stored_hashes
from audit.selectors import event_canonical_bytes, inclusion_proof_get
from audit.sequencer import sequence_pending
from audit.signing import checkpoint_signer
from core.errors import IntegrityFailure
from tests.audit.support import horizon_passed, triggers_bypassed
from tests.factories import FACTORY_ACTOR
from tlog.merkle import (
    Frontier,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from tlog.note import Checkpoint as CheckpointNote

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = 10


@pytest.fixture
def log(settings: object) -> list[int]:
    """Ten events, sequenced four at a time (checkpoints at 4, 8, 10). Returns the event id
    at each leaf index."""
    settings.AUDIT_SEQUENCE_ON_COMMIT = False  # type: ignore[attr-defined]
    for number in range(EVENTS):
        with transaction.atomic():
            record(actor=FACTORY_ACTOR, action="test:event", target=("test.thing", str(number)), data={"n": number})
    horizon_passed()
    sequence_pending(batch_size=4)
    return list(AuditLeaf.objects.order_by("leaf_index").values_list("event_id", flat=True))


def verify() -> str:
    """Run the command; return its error, or '' when the log verifies."""
    try:
        call_command("audit_verify", stdout=StringIO(), stderr=StringIO())
    except CommandError as error:
        return str(error)
    return ""


def test_an_untouched_log_verifies(log: list[int]) -> None:
    out = StringIO()

    call_command("audit_verify", stdout=out, stderr=StringIO())

    assert out.getvalue().strip() == "ok: 10 leaves and 3 checkpoints verified"


@pytest.mark.requirement("PR-10")
def test_changing_one_byte_of_an_event_is_reported_at_its_leaf(log: list[int]) -> None:
    with triggers_bypassed() as cursor:
        cursor.execute("UPDATE audit_auditevent SET data = %s WHERE id = %s", ['{"n":5}', log[4]])

    assert verify().startswith("first divergent leaf: 4 ")


def test_changing_the_actor_is_reported_at_its_leaf(log: list[int]) -> None:
    with triggers_bypassed() as cursor:
        cursor.execute("UPDATE audit_auditevent SET actor = 'user:someone-else' WHERE id = %s", [log[6]])

    assert verify().startswith("first divergent leaf: 6 ")


@pytest.mark.requirement("PR-10")
def test_deleting_an_event_is_reported_at_its_leaf(log: list[int]) -> None:
    with triggers_bypassed() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [log[3]])

    error = verify()
    assert error.startswith("first divergent leaf: 3 ")
    assert "is gone" in error


@pytest.mark.requirement("PR-10")
def test_deleting_an_event_and_its_leaf_is_reported_at_that_leaf(log: list[int]) -> None:
    with triggers_bypassed() as cursor:
        cursor.execute("DELETE FROM audit_auditleaf WHERE leaf_index = 5")
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [log[5]])

    assert verify().startswith("first divergent leaf: 5 ")


@pytest.mark.requirement("PR-10")
def test_swapping_two_events_is_reported_at_the_first(log: list[int]) -> None:
    with triggers_bypassed() as cursor:
        cursor.execute("SELECT data FROM audit_auditevent WHERE id = %s", [log[2]])
        second = cursor.fetchone()[0]
        cursor.execute("SELECT data FROM audit_auditevent WHERE id = %s", [log[7]])
        seventh = cursor.fetchone()[0]
        cursor.execute("UPDATE audit_auditevent SET data = %s WHERE id = %s", [seventh, log[2]])
        cursor.execute("UPDATE audit_auditevent SET data = %s WHERE id = %s", [second, log[7]])

    assert verify().startswith("first divergent leaf: 2 ")


def test_swapping_two_leaves_is_reported_at_the_first(log: list[int]) -> None:
    with triggers_bypassed() as cursor:
        cursor.execute("UPDATE audit_auditleaf SET leaf_index = -1 WHERE leaf_index = 1")
        cursor.execute("UPDATE audit_auditleaf SET leaf_index = 1 WHERE leaf_index = 8")
        cursor.execute("UPDATE audit_auditleaf SET leaf_index = 8 WHERE leaf_index = -1")

    assert verify().startswith("first divergent leaf: 1 ")


def _forge_event(cursor: object, *, event_id: int, txid: int | None, like: int) -> bytes:
    """Insert an event that copies the time and actor of another, and return its leaf hash."""
    cursor.execute(  # type: ignore[attr-defined]
        "INSERT INTO audit_auditevent (id, created_at, actor, actor_id, action, target_type, target_id, data,"
        " request_id, txid) SELECT %s, created_at, actor, actor_id, 'test:event', 'test.thing', 'forged',"
        " '{\"n\":99}', '', %s FROM audit_auditevent WHERE id = %s",
        [event_id, txid, like],
    )
    return _leaf_hash_of(event_id)


@pytest.mark.requirement("PR-10")
def test_inserting_an_event_into_the_middle_is_reported_where_it_was_put(log: list[int]) -> None:
    txid = AuditEvent.objects.get(pk=log[5]).txid
    with triggers_bypassed() as cursor:
        forged_hash = _forge_event(cursor, event_id=max(log) + 100, txid=txid, like=log[5])
        for index in range(EVENTS - 1, 4, -1):  # make room at leaf 5
            cursor.execute("UPDATE audit_auditleaf SET leaf_index = %s WHERE leaf_index = %s", [index + 1, index])
        cursor.execute(
            "INSERT INTO audit_auditleaf (leaf_index, event_id, leaf_hash) VALUES (5, %s, %s)",
            [max(log) + 100, forged_hash],
        )

    assert verify().startswith("first divergent leaf: 5 ")


def test_inserting_an_event_behind_the_sequencer_is_reported(log: list[int]) -> None:
    first_txid = AuditEvent.objects.get(pk=log[0]).txid
    with triggers_bypassed() as cursor:
        # Before every sequenced event in sequencing order: it can never be sequenced now.
        _forge_event(cursor, event_id=-5, txid=None if first_txid is None else first_txid - 1, like=log[0])

    error = verify()
    assert error.startswith("first divergent leaf: 0 ")
    assert "event -5 is not in the log" in error


@pytest.mark.requirement("PR-10")
def test_a_checkpoint_kept_outside_no_longer_matches_after_a_thorough_rewrite(log: list[int]) -> None:
    """The attacker rewrites an event and every hash the database holds, so that the database
    agrees with itself. Checkpoints signed before, kept outside, no longer match."""
    kept_outside = _signed_checkpoint(4)
    with triggers_bypassed() as cursor:
        cursor.execute("UPDATE audit_auditevent SET data = %s WHERE id = %s", ['{"n":1000}', log[1]])
        cursor.execute("UPDATE audit_auditleaf SET leaf_hash = %s WHERE leaf_index = 1", [_leaf_hash_of(log[1])])
        cursor.execute("DELETE FROM audit_auditnode")
        frontier = Frontier(size=0, hashes=[])
        nodes = []
        for digest in AuditLeaf.objects.order_by("leaf_index").values_list("leaf_hash", flat=True):
            nodes += [AuditNode(level=lv, index=ix, hash=h) for lv, ix, h in frontier.append(bytes(digest))]
        AuditNode.objects.bulk_create(nodes)
    presented_root = frontier.root()  # what the rewritten database now claims for size 10

    error = verify()
    assert error.startswith("first divergent leaf: 0 ")
    assert "checkpoint at size 4 does not match the recomputed tree" in error
    # The service itself no longer proves the rewritten event: the proof does not lead to
    # the root signed at size 4.
    with pytest.raises(IntegrityFailure):
        inclusion_proof_get(event_id=log[1], tree_size=4)
    # Proofs built from the rewritten database, as its owner would present them, fail against
    # the checkpoint kept outside.
    proof = consistency_proof(4, 10, stored_hashes)
    with pytest.raises(ProofError):
        verify_consistency(4, 10, proof, kept_outside.root_hash, presented_root)
    inclusion = inclusion_proof(1, 4, stored_hashes)
    with pytest.raises(ProofError):
        verify_inclusion(_leaf_hash_of(log[1]), 1, 4, inclusion, kept_outside.root_hash)


def _signed_checkpoint(size: int) -> CheckpointNote:
    note = Checkpoint.objects.get(tree_size=size).signed_note
    return CheckpointNote.parse(checkpoint_signer().verifier().open(note))


def _leaf_hash_of(event_id: int) -> bytes:
    return leaf_hash(event_canonical_bytes(AuditEvent.objects.get(pk=event_id)))
