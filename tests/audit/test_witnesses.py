"""Two witnesses (``python -m tlog.witness``) on 127.0.0.1: the service gathers both
cosignatures for each checkpoint and serves them; after a rollback or a rebuild of the
database both refuse to cosign, and the service raises the alarm. The cosignatures are
checked here with a few lines of Ed25519 (RFC 8032) written from the C2SP tlog-cosignature
text, not with the project's code or its crypto library."""

import base64
import hashlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.db import transaction

from audit import record
from audit.models import AuditAlarm, AuditEvent, Checkpoint, WitnessCosignature
from audit.signing import verifier_key
from audit.trust import SignedHead, state_path, state_save
from outbox.models import Message
from tests.audit.support import gate_reason_codes, sequence_all, triggers_bypassed, witness_start
from tests.conftest import Cast
from tests.factories import FACTORY_ACTOR
from tests.processes import process_stop

pytestmark = pytest.mark.django_db(transaction=True)

# --- Ed25519 verification, RFC 8032 section 5.1.7, affine coordinates (slow, and short) --------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _x(y: int, sign: int) -> int:
    xx = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(xx, (P + 3) // 8, P)
    if (x * x - xx) % P:
        x = x * SQRT_M1 % P
    if (x * x - xx) % P:
        raise ValueError("not a point")
    return P - x if x & 1 != sign else x


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P, (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P)


def _mul(point: tuple[int, int], k: int) -> tuple[int, int]:
    result = (0, 1)
    while k:
        if k & 1:
            result = _add(result, point)
        point, k = _add(point, point), k >> 1
    return result


def _decode(encoded: bytes) -> tuple[int, int]:
    y = int.from_bytes(encoded, "little")
    return (_x(y & (2**255 - 1), y >> 255), y & (2**255 - 1))


BASE = (_x(4 * pow(5, P - 2, P) % P, 0), 4 * pow(5, P - 2, P) % P)


def ed25519_valid(public: bytes, message: bytes, signature: bytes) -> bool:
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    return _mul(BASE, s) == _add(_decode(signature[:32]), _mul(_decode(public), h))


def cosignature_valid(line: str, *, name: str, public: bytes, checkpoint_body: str) -> bool:
    """tlog-cosignature v1: '— <name> base64(keyid || u64 time || sig)', the key ID
    SHA-256(name || '\\n' || 0x04 || key)[:4], the message 'cosignature/v1\\ntime <t>\\n' + body."""
    prefix = f"\u2014 {name} "
    if not line.startswith(prefix):
        return False
    raw = base64.b64decode(line[len(prefix) :])
    if raw[:4] != hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4] or len(raw) != 76:
        return False
    (timestamp,) = struct.unpack(">Q", raw[4:12])
    return ed25519_valid(public, f"cosignature/v1\ntime {timestamp}\n{checkpoint_body}".encode(), raw[12:])


# --- Two witness processes ------------------------------------------------------------------


@pytest.fixture
def witnessed(
    settings: Any, tmp_path_factory: pytest.TempPathFactory, eager_celery: None
) -> Iterator[list[dict[str, str]]]:
    # Eager even in CI's broker pass: these tests are about what a submission does, not how a
    # worker receives it (bench/audit.py --broker-url runs the submissions on a real worker).
    directory = tmp_path_factory.mktemp("witnesses")
    started = [witness_start(f"witness.test/w{number}", directory, verifier_key()) for number in (1, 2)]
    settings.AUDIT_SEQUENCE_ON_COMMIT = False
    settings.AUDIT_WITNESSES = [config for _, config, _ in started]
    WITNESS_STATES[:] = [state for _, _, state in started]
    settings.AUDIT_ALARM_DENIES_GATE = True
    try:
        yield settings.AUDIT_WITNESSES
    finally:
        for process, _, _ in started:
            process_stop(process, timeout=10)


def add_events(count: int, start: int) -> None:
    for number in range(start, start + count):
        with transaction.atomic():
            record(actor=FACTORY_ACTOR, action="test:event", target=("test.thing", str(number)), data={"n": number})


def _public(config: dict[str, str]) -> tuple[str, bytes]:
    name, _, material = config["key"].split("+", 2)
    return name, base64.b64decode(material)[1:]


def _grow(batches: int = 2) -> Checkpoint:
    for _ in range(batches):
        add_events(3, AuditEvent.objects.count())
        sequence_all()
    return Checkpoint.objects.latest()


@pytest.mark.requirement("PR-10")
def test_both_witnesses_cosign_and_the_api_serves_their_cosignatures(
    witnessed: list[dict[str, str]], cast: Cast
) -> None:
    latest = _grow()

    note = cast.session(cast.auditor).get("/api/v1/audit/checkpoint").content.decode()

    body = latest.signed_note[: latest.signed_note.index("\n\n") + 1]
    assert note.startswith(latest.signed_note)
    for config in witnessed:
        name, public = _public(config)
        lines = [line for line in note.splitlines() if line.startswith(f"\u2014 {name} ")]
        assert len(lines) == 1
        assert cosignature_valid(lines[0], name=name, public=public, checkpoint_body=body)
        assert not cosignature_valid(lines[0], name=name, public=public, checkpoint_body=body.replace("\n", "\n\n", 1))
    assert WitnessCosignature.objects.filter(checkpoint=latest).count() == 2


def test_the_quorum_policy_holds_the_gate(witnessed: list[dict[str, str]], cast: Cast, settings: Any) -> None:
    settings.AUDIT_WITNESS_QUORUM = 2

    def reasons() -> list[str]:
        return gate_reason_codes(cast, "sha256:" + "c" * 64)

    assert "witness_quorum_missing" in reasons()  # nothing cosigned yet
    _grow(1)
    assert "witness_quorum_missing" not in reasons()


def _adopt_database_head() -> None:
    """The sequencer's own record cannot be touched by the database's owner; these cases are
    where it was lost and adopted, so that only the witnesses stand between him and a
    rewritten history."""
    state_path().unlink(missing_ok=True)
    latest = Checkpoint.objects.order_by("-tree_size").first()
    if latest is not None:
        from audit.selectors import signed_root

        state_save(SignedHead(latest.tree_size, signed_root(latest), latest.signed_note))


WITNESS_STATES: list[Path] = []


def _witness_sizes() -> list[int]:
    """What each witness process recorded as the latest size it cosigned."""
    return [next(iter(json.loads(path.read_text()).values()))["size"] for path in WITNESS_STATES]


@pytest.mark.requirement("PR-10")
def test_after_a_rollback_both_witnesses_refuse_and_the_alarm_is_raised(
    witnessed: list[dict[str, str]], settings: Any
) -> None:
    settings.AUDIT_ALARM_EMAILS = ["audit-ops@bank.example"]
    cosigned = _grow(3)
    keep = Checkpoint.objects.order_by("tree_size").first()
    assert keep is not None
    with triggers_bypassed() as cursor:
        cursor.execute("DELETE FROM audit_witnesscosignature")
        cursor.execute("DELETE FROM audit_checkpoint WHERE tree_size > %s", [keep.tree_size])
        cursor.execute("DELETE FROM audit_auditleaf WHERE leaf_index >= %s", [keep.tree_size])
        cursor.execute('DELETE FROM audit_auditnode WHERE ("index" + 1) * (1 << level) > %s', [keep.tree_size])
        cursor.execute("DELETE FROM audit_auditevent WHERE id NOT IN (SELECT event_id FROM audit_auditleaf)")
    _adopt_database_head()
    add_events(1, 100)  # sequenced again after the kept checkpoint, with the events rolled back

    sequence_all()

    latest = Checkpoint.objects.latest()
    assert not WitnessCosignature.objects.filter(checkpoint=latest).exists()
    alarm = AuditAlarm.objects.get(kind="witness_refused", resolved_at__isnull=True)
    assert alarm.occurrences >= 2  # both refused (and again for the alarm's own event)
    assert _witness_sizes() == [cosigned.tree_size, cosigned.tree_size]
    [told] = [message for message in mail.outbox if message.subject == "Audit log alarm: witness_refused"]
    assert told.to == ["audit-ops@bank.example"]


@pytest.mark.requirement("PR-10")
def test_after_a_rebuild_both_witnesses_refuse_and_the_alarm_is_raised(witnessed: list[dict[str, str]]) -> None:
    cosigned = _grow(2)
    first = AuditEvent.objects.order_by("id").first()
    assert first is not None
    with triggers_bypassed() as cursor:
        cursor.execute("UPDATE audit_auditevent SET data = %s WHERE id = %s", ['{"n":1000}', first.pk])
        for table in ("audit_witnesscosignature", "audit_checkpoint", "audit_auditnode", "audit_auditleaf"):
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 - constant names
    _adopt_database_head()
    add_events(1, 100)

    sequence_all()

    assert not WitnessCosignature.objects.exists()
    alarm = AuditAlarm.objects.get(kind="witness_refused", resolved_at__isnull=True)
    assert alarm.occurrences >= 2
    assert _witness_sizes() == [cosigned.tree_size, cosigned.tree_size]


def test_a_witness_that_cannot_be_reached_is_carried_forward_by_the_next_checkpoint(
    witnessed: list[dict[str, str]], settings: Any
) -> None:
    """Submissions go through the outbox after the sequencer commits: a witness that is down
    costs the sequencer nothing and raises no alarm, and the next checkpoint's submission brings
    it up to date with a consistency proof from the size it last cosigned."""
    reachable, down = witnessed
    settings.AUDIT_WITNESSES = [reachable, {**down, "url": "http://127.0.0.1:9/add-checkpoint"}]
    first = _grow(1)
    assert list(WitnessCosignature.objects.filter(checkpoint=first).values_list("witness", flat=True)) == [
        _public(reachable)[0]
    ]
    assert not Message.objects.exists()  # published and gone: nothing waits for the flush

    settings.AUDIT_WITNESSES = witnessed
    second = _grow(1)

    assert WitnessCosignature.objects.filter(checkpoint=second).count() == 2
    assert not AuditAlarm.objects.exists()
    assert _witness_sizes() == [second.tree_size, second.tree_size]


def test_submissions_back_off() -> None:
    from audit.witnessing import RETRY_MAX_DELAY_SECONDS, retry_delay

    assert [retry_delay(attempt) for attempt in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert retry_delay(30) == RETRY_MAX_DELAY_SECONDS
