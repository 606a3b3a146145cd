"""audit_verify covers everything: stored nodes, the chain of checkpoints, checkpoints kept
outside (``--trusted-checkpoint``), the unsigned tail, backdated events; and from a trusted
checkpoint it checks only what came after."""

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.models import AuditAlarm, AuditEvent, Checkpoint
from audit.selectors import event_canonical_bytes
from audit.verification import trusted_checkpoint_parse, verify_log
from tests.audit.support import add_events, sequence_all, ten_sequenced_events, triggers_bypassed
from tlog.merkle import leaf_hash

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def log(settings: Any) -> list[int]:
    settings.AUDIT_SEQUENCE_ON_COMMIT = False
    return ten_sequenced_events()


def verify(*args: str) -> str:
    """The command's error, or its output when the log verifies."""
    out = StringIO()
    try:
        call_command("audit_verify", *args, stdout=out, stderr=StringIO())
    except CommandError as error:
        return "FAILED " + str(error)
    return out.getvalue().strip()


def kept(tmp_path: Path, size: int) -> str:
    path = tmp_path / f"checkpoint-{size}.txt"
    path.write_text(Checkpoint.objects.get(tree_size=size).signed_note)
    return str(path)


def test_checkpoints_name_the_one_before(log: list[int]) -> None:
    notes = list(Checkpoint.objects.order_by("tree_size").values_list("tree_size", "signed_note"))
    previous = 0
    for size, note in notes:
        assert f"\nprevious {previous}\n" in note
        previous = size


def test_an_altered_stored_node_fails_verification_and_raises_the_alarm(log: list[int]) -> None:
    with triggers_bypassed() as cursor:
        cursor.execute('UPDATE audit_auditnode SET hash = %s WHERE level = 1 AND "index" = 1', [b"\1" * 32])

    assert "stored node (1, 1) does not match leaves 2..3" in verify()
    assert AuditAlarm.objects.get().kind == "verification_failed"


def test_a_missing_node_fails_verification(log: list[int]) -> None:
    with triggers_bypassed() as cursor:
        cursor.execute('DELETE FROM audit_auditnode WHERE level = 2 AND "index" = 1')

    assert "level 2 of the tree has 1 stored nodes from node 0, the log's 10 leaves need 2" in verify()


def test_a_deleted_intermediate_checkpoint_is_missing_from_the_chain(log: list[int]) -> None:
    middle = Checkpoint.objects.order_by("tree_size")[1].tree_size
    with triggers_bypassed() as cursor:
        cursor.execute("DELETE FROM audit_checkpoint WHERE tree_size = %s", [middle])

    assert f"the checkpoint at size {middle}, which the one at size" in verify()


def test_a_deleted_latest_checkpoint_leaves_an_unsigned_tail(log: list[int]) -> None:
    before = Checkpoint.objects.order_by("-tree_size")[1].tree_size
    with triggers_bypassed() as cursor:
        cursor.execute("DELETE FROM audit_checkpoint WHERE tree_size = 10")

    assert f"leaves {before}..9 are past the latest checkpoint: unsigned, not verified" in verify()


def test_a_rolled_back_tail_is_caught_by_a_checkpoint_kept_outside(log: list[int], tmp_path: Path) -> None:
    latest = kept(tmp_path, 10)
    first = Checkpoint.objects.earliest().tree_size
    with triggers_bypassed() as cursor:
        cursor.execute("DELETE FROM audit_checkpoint WHERE tree_size > %s", [first])
        cursor.execute("DELETE FROM audit_auditleaf WHERE leaf_index >= %s", [first])
        cursor.execute('DELETE FROM audit_auditnode WHERE ("index" + 1) * (1 << level) > %s', [first])
        for event_id in log[first:]:
            cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [event_id])

    assert verify().startswith("ok")  # consistent in itself
    assert "fewer than the checkpoint at size 10 kept outside: it was rolled back" in verify(
        "--trusted-checkpoint", latest
    )


def test_a_rewritten_log_is_caught_by_a_checkpoint_kept_outside(log: list[int], tmp_path: Path) -> None:
    first = Checkpoint.objects.earliest().tree_size
    early = kept(tmp_path, first)
    with triggers_bypassed() as cursor:
        cursor.execute("UPDATE audit_auditevent SET data = %s WHERE id = %s", ['{"n":77}', log[0]])
        rewritten = leaf_hash(event_canonical_bytes(AuditEvent.objects.get(pk=log[0])))
        cursor.execute("UPDATE audit_auditleaf SET leaf_hash = %s WHERE leaf_index = 0", [rewritten])
    trusted = [trusted_checkpoint_parse(Path(path).read_text()) for path in (early, kept(tmp_path, 10))]

    reasons = [divergence.reason for divergence in verify_log(trusted=trusted).divergences]

    assert f"the log no longer matches the checkpoint at size {first} kept outside" in " ".join(reasons)


def test_a_checkpoint_not_signed_by_the_log_key_is_refused(log: list[int], tmp_path: Path) -> None:
    forged = tmp_path / "forged.txt"
    forged.write_text(Checkpoint.objects.latest().signed_note.replace("\n10\n", "\n11\n"))

    assert "not a checkpoint of this log signed by its key" in verify("--trusted-checkpoint", str(forged))


def test_a_backdated_event_is_flagged(log: list[int], settings: Any) -> None:
    settings.AUDIT_BACKDATING_TOLERANCE_SECONDS = 60
    add_events(1, start=50)
    forged = AuditEvent.objects.order_by("-id").first()
    assert forged is not None
    with triggers_bypassed() as cursor:
        past = "2020-01-01 00:00:00+00:00" if connection.vendor == "postgresql" else "2020-01-01 00:00:00"
        cursor.execute("UPDATE audit_auditevent SET created_at = %s WHERE id = %s", [past, forged.pk])
    sequence_all()

    assert "leaf 10: its event's time lies before an earlier leaf's by more than 60 s (backdated)" in verify()


def test_from_a_trusted_checkpoint_only_the_new_leaves_are_checked(log: list[int], tmp_path: Path) -> None:
    trusted = kept(tmp_path, 10)
    add_events(5, start=30)
    sequence_all()

    assert verify("--trusted-checkpoint", trusted, "--since-trusted").startswith("ok: leaves 10..14 and")

    with triggers_bypassed() as cursor:
        cursor.execute("UPDATE audit_auditevent SET data = %s WHERE id = %s", ['{"n":77}', log[0]])
        cursor.execute("UPDATE audit_auditevent SET data = %s WHERE id = %s", ['{"n":78}', log[-1] + 2])
    error = verify("--trusted-checkpoint", trusted, "--since-trusted")
    assert error.startswith("FAILED first divergent leaf: 11 ")  # leaf 0 is before the trusted checkpoint


def test_from_a_trusted_checkpoint_a_rewritten_past_does_not_reproduce_it(log: list[int], tmp_path: Path) -> None:
    trusted = kept(tmp_path, 10)
    with triggers_bypassed() as cursor:
        cursor.execute('UPDATE audit_auditnode SET hash = %s WHERE level = 3 AND "index" = 0', [b"\3" * 32])

    assert "no longer reproduces the checkpoint at size 10 kept outside" in verify(
        "--trusted-checkpoint", trusted, "--since-trusted"
    )
