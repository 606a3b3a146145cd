"""The sequencer trusts nothing unsigned: before it extends the log it checks that the database
holds what it last signed (kept outside the database, audit/trust.py). When it does not, it
signs nothing, raises an alarm (logged, counted in the metrics, audited), and the gate denies
until an operator resolves it."""

import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from audit.alarms import LogInconsistent
from audit.events import format_time
from audit.models import AuditAlarm, AuditEvent, AuditLeaf, Checkpoint
from audit.sequencer import sequence_pending
from audit.trust import state_load
from releasegate.metrics import metrics_text
from tests.audit.support import add_events, gate_reason_codes, sequence_all, ten_sequenced_events, triggers_bypassed
from tests.conftest import Cast

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def log(settings: Any) -> list[int]:
    """Ten events in several checkpoints, the first within the first four leaves; the event id at each leaf."""
    settings.AUDIT_SEQUENCE_ON_COMMIT = False
    leaves = ten_sequenced_events()
    # Checkpoints at 4, 8 and 10, or more of them on a busy PostgreSQL server (horizon).
    assert {4, 8, 10} <= set(Checkpoint.objects.values_list("tree_size", flat=True)) or _pg()
    assert Checkpoint.objects.latest().tree_size == 10
    return leaves


def refused(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    """One more event: the sequencer refuses to sign it, says so, and records the alarm."""
    checkpoints = list(Checkpoint.objects.values_list("tree_size", "signed_note"))
    add_events(1, start=100)
    with caplog.at_level(logging.ERROR, logger="audit.alarms"), pytest.raises(LogInconsistent) as refusal:
        sequence_pending()
    assert refusal.value.kind == kind
    assert list(Checkpoint.objects.values_list("tree_size", "signed_note")) == checkpoints  # nothing signed
    alarm = AuditAlarm.objects.get(resolved_at__isnull=True)
    assert alarm.kind == kind
    assert any(kind in message for message in caplog.messages)
    assert f'releasegate_audit_alarms_open{{kind="{kind}"}} 1' in metrics_text()
    assert AuditEvent.objects.filter(action="audit_alarm:raised", target_id=str(alarm.pk)).exists()


def test_the_state_file_follows_every_signed_checkpoint(log: list[int]) -> None:
    head = state_load()

    assert head is not None
    latest = Checkpoint.objects.latest()
    assert (head.size, head.root_hash, head.signed_note) == (10, bytes(latest.root_hash), latest.signed_note)


@pytest.mark.requirement("PR-10")
def test_a_rebuild_from_edited_events_is_not_signed(log: list[int], caplog: pytest.LogCaptureFixture) -> None:
    with triggers_bypassed() as cursor:
        cursor.execute("UPDATE audit_auditevent SET data = %s WHERE id = %s", ['{"n":99}', log[3]])
        for table in ("audit_checkpoint", "audit_auditnode", "audit_auditleaf"):
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - constant names

    refused("rolled_back", caplog)
    assert AuditLeaf.objects.count() == 0


@pytest.mark.requirement("PR-10")
def test_a_rolled_back_tail_is_not_signed(log: list[int], caplog: pytest.LogCaptureFixture) -> None:
    with triggers_bypassed() as cursor:
        cursor.execute("DELETE FROM audit_checkpoint WHERE tree_size > 4")
        cursor.execute("DELETE FROM audit_auditleaf WHERE leaf_index >= 4")
        cursor.execute('DELETE FROM audit_auditnode WHERE ("index" + 1) * (1 << level) > 4')
        cursor.execute(
            "DELETE FROM audit_auditevent WHERE id = ANY(%s)" if _pg() else _in("id", log[4:]), _ids(log[4:])
        )

    refused("rolled_back", caplog)


def test_deleting_the_latest_checkpoint_is_reported(log: list[int], caplog: pytest.LogCaptureFixture) -> None:
    with triggers_bypassed() as cursor:
        cursor.execute("DELETE FROM audit_checkpoint WHERE tree_size = 10")

    refused("rolled_back", caplog)


def test_an_edited_frontier_is_not_extended(log: list[int], caplog: pytest.LogCaptureFixture) -> None:
    latest = Checkpoint.objects.latest()
    frontier = dict(latest.frontier)
    frontier["hashes"] = ["00" * 32, *frontier["hashes"][1:]]
    with triggers_bypassed() as cursor:
        cursor.execute("UPDATE audit_checkpoint SET frontier = %s WHERE tree_size = 10", [json.dumps(frontier)])

    refused("frontier_mismatch", caplog)


def test_a_leaf_appended_past_the_checkpoint_is_reported(log: list[int], caplog: pytest.LogCaptureFixture) -> None:
    add_events(1, start=50)
    forged = AuditEvent.objects.order_by("-id").first()
    assert forged is not None
    with triggers_bypassed() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditleaf (leaf_index, event_id, leaf_hash) VALUES (10, %s, %s)", [forged.pk, b"\0" * 32]
        )

    refused("leaves_past_checkpoint", caplog)


def test_a_moved_position_is_reported(log: list[int], caplog: pytest.LogCaptureFixture) -> None:
    column = "last_txid" if _pg() else "last_event_id"
    with triggers_bypassed() as cursor:
        cursor.execute(f"UPDATE audit_checkpoint SET {column} = {column} + 1000 WHERE tree_size = 10")  # noqa: S608

    refused("position_moved", caplog)


def lagging_state_file(settings: Any, tmp_path: Path) -> Checkpoint:
    """The sequencer's state file left at the first checkpoint (size 4), which it returns."""
    old = Checkpoint.objects.earliest()
    lagging = tmp_path / "state.json"
    root_hash = base64.b64encode(bytes(old.root_hash)).decode()
    lagging.write_text(json.dumps({"size": 4, "root_hash": root_hash, "signed_note": old.signed_note}))
    settings.AUDIT_SEQUENCER_STATE_FILE = str(lagging)
    return old


def test_a_lagging_state_file_catches_up_on_a_consistent_log(log: list[int], settings: Any, tmp_path: Path) -> None:
    """A crash between commit and writing the file leaves it behind: the signed extension is
    proven consistent with it from the stored nodes, and the file catches up."""
    old = lagging_state_file(settings, tmp_path)
    add_events(2, start=20)

    sequence_all()

    head = state_load()
    assert head is not None
    assert head.size == 12 > old.tree_size
    assert not AuditAlarm.objects.exists()


def test_a_lagging_state_file_and_an_altered_node_are_reported(
    log: list[int], settings: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lagging_state_file(settings, tmp_path)
    with triggers_bypassed() as cursor:
        cursor.execute('UPDATE audit_auditnode SET hash = %s WHERE level = 2 AND "index" = 1', [b"\1" * 32])

    refused("not_an_extension", caplog)


def test_without_its_state_file_the_sequencer_waits_for_an_operator(
    log: list[int], settings: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings.AUDIT_SEQUENCER_STATE_FILE = str(tmp_path / "lost.json")

    refused("state_missing", caplog)

    call_command("audit_trust_adopt", stdout=__import__("io").StringIO())
    sequence_all()
    assert Checkpoint.objects.latest().tree_size == AuditEvent.objects.count()  # the alarm's event too


def test_the_gate_denies_while_an_alarm_is_open_and_resolving_is_audited(
    log: list[int], cast: Cast, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.AUDIT_ALARM_DENIES_GATE = True
    with triggers_bypassed() as cursor:
        cursor.execute("DELETE FROM audit_checkpoint WHERE tree_size = 10")
    refused("rolled_back", caplog)

    def reasons() -> list[str]:
        return gate_reason_codes(cast, "sha256:" + "a" * 64)

    assert "audit_log_inconsistent" in reasons()

    alarm = AuditAlarm.objects.get()
    call_command(
        "audit_alarm_resolve",
        str(alarm.pk),
        by=cast.admin.username,
        resolution="restored from backup",
        stdout=__import__("io").StringIO(),
    )
    alarm.refresh_from_db()
    assert alarm.resolved_by == cast.admin
    assert alarm.resolution == "restored from backup"
    assert AuditEvent.objects.filter(action="audit_alarm:resolved", actor=cast.admin.audit_actor).exists()
    assert "audit_log_inconsistent" not in reasons()


def test_a_missing_node_is_a_log_inconsistent_answer(log: list[int], cast: Cast) -> None:
    with triggers_bypassed() as cursor:
        cursor.execute('DELETE FROM audit_auditnode WHERE level = 2 AND "index" = 1')
    client = cast.session(cast.auditor)

    for url in (f"/api/v1/audit/events/{log[1]}/proof", "/api/v1/audit/consistency?first_size=4&second_size=10"):
        response = client.get(url)
        assert response.json().get("code") == "log_inconsistent", (url, response.status_code, response.content[:300])


def test_the_events_api_writes_the_time_as_the_leaf_bytes(log: list[int], cast: Cast) -> None:
    with triggers_bypassed() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET created_at = %s WHERE id = %s",
            ["2026-01-02 03:04:05+00:00" if _pg() else "2026-01-02 03:04:05", log[0]],
        )
    event = AuditEvent.objects.get(pk=log[0])

    page = cast.session(cast.auditor).get("/api/v1/audit/events/?limit=1").json()

    assert page["results"][0]["time"] == format_time(event.created_at) == "2026-01-02T03:04:05.000000Z"


def _pg() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


def _in(column: str, values: list[int]) -> str:
    return f"DELETE FROM audit_auditevent WHERE {column} IN ({', '.join(['%s'] * len(values))})"  # noqa: S608


def _ids(values: list[int]) -> list[Any]:
    return [values] if _pg() else list(values)
