"""The service never hands out a proof that would not verify: every inclusion and consistency
proof, from the API or for an evidence pack, is checked against the root its checkpoint's
signature vouches for. A log changed behind the application's back (here by someone who
bypasses the triggers) gets `log_inconsistent` instead of a proof."""

import pytest
from django.db import transaction

from audit import record
from audit.models import AuditLeaf, Checkpoint
from audit.selectors import consistency_proof_get, event_canonical_bytes, inclusion_proof_get, inclusion_proofs
from audit.sequencer import sequence_pending
from core.errors import IntegrityFailure
from tests.audit.support import horizon_passed, triggers_bypassed
from tests.conftest import Cast
from tests.factories import FACTORY_ACTOR
from tlog.merkle import leaf_hash

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def log(settings: object) -> list[int]:
    """Ten events, sequenced four at a time (checkpoints at 4, 8, 10); the event id at each
    leaf index."""
    settings.AUDIT_SEQUENCE_ON_COMMIT = False  # type: ignore[attr-defined]
    for number in range(10):
        with transaction.atomic():
            record(actor=FACTORY_ACTOR, action="test:event", target=("test.thing", str(number)), data={"n": number})
    horizon_passed()
    sequence_pending(batch_size=4)
    return list(AuditLeaf.objects.order_by("leaf_index").values_list("event_id", flat=True))


def test_an_untouched_log_serves_proofs(log: list[int]) -> None:
    assert inclusion_proof_get(event_id=log[2]).tree_size == 10
    assert consistency_proof_get(first_size=4, second_size=10)


def test_a_changed_interior_node_serves_no_inclusion_proof(log: list[int], cast: Cast) -> None:
    with triggers_bypassed() as cursor:  # the node over leaves 0 and 1, a sibling on leaf 2's path
        cursor.execute('UPDATE audit_auditnode SET hash = %s WHERE level = 1 AND "index" = 0', [b"\x07" * 32])

    with pytest.raises(IntegrityFailure) as refused:
        inclusion_proof_get(event_id=log[2])
    response = cast.session(cast.auditor).get(f"/api/v1/audit/events/{log[2]}/proof")

    assert refused.value.code == "log_inconsistent"
    assert "leaf 2" in refused.value.message
    assert response.status_code == 500
    assert response.json()["code"] == "log_inconsistent"


def test_a_changed_node_serves_no_consistency_proof(log: list[int]) -> None:
    with triggers_bypassed() as cursor:  # the node over leaves 4 to 7, in the proof from 4 to 10
        cursor.execute('UPDATE audit_auditnode SET hash = %s WHERE level = 2 AND "index" = 1', [b"\x07" * 32])

    with pytest.raises(IntegrityFailure) as refused:
        consistency_proof_get(first_size=4, second_size=10)

    assert refused.value.code == "log_inconsistent"


def test_a_changed_event_serves_no_proof(log: list[int]) -> None:
    with triggers_bypassed() as cursor:
        cursor.execute("UPDATE audit_auditevent SET data = %s WHERE id = %s", ['{"n":99}', log[5]])

    with pytest.raises(IntegrityFailure, match="no longer matches leaf 5"):
        inclusion_proof_get(event_id=log[5])


def test_a_changed_checkpoint_root_column_is_not_believed(log: list[int]) -> None:
    with triggers_bypassed() as cursor:  # the column, not the signed note: the proof fails
        cursor.execute("UPDATE audit_checkpoint SET root_hash = %s WHERE tree_size = 10", [b"\x07" * 32])

    assert inclusion_proof_get(event_id=log[2]).tree_size == 10


def test_proofs_for_a_pack_are_checked_for_the_bytes_the_pack_ships(log: list[int]) -> None:
    from audit.models import AuditEvent

    checkpoint = Checkpoint.objects.get(tree_size=10)
    shown = {
        index: leaf_hash(event_canonical_bytes(AuditEvent.objects.get(pk=event_id)))
        for index, event_id in enumerate(log)
    }

    assert set(inclusion_proofs(leaf_hashes=shown, checkpoint=checkpoint)) == set(range(10))
    with pytest.raises(IntegrityFailure, match="leaf 3"):
        inclusion_proofs(leaf_hashes={**shown, 3: leaf_hash(b"another event")}, checkpoint=checkpoint)
