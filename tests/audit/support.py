"""Helpers for audit tests: bypassing the append-only triggers the way an attacker with full
database rights would, and running the standalone verifier as an auditor would."""

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import connection

from audit.triggers import create_statements, drop_statements

if TYPE_CHECKING:
    from tests.conftest import Cast

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def triggers_bypassed() -> Iterator[Any]:
    """PostgreSQL: a superuser's replication role disables the triggers for this session.
    SQLite: whoever owns the file can drop them. Yields a cursor for the tampering SQL."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
            try:
                yield cursor
            finally:
                cursor.execute("SET session_replication_role = DEFAULT")
        else:
            cursor.execute("PRAGMA foreign_keys = OFF")
            for statement in drop_statements("sqlite"):
                cursor.execute(statement)
            try:
                yield cursor
            finally:
                for statement in create_statements("sqlite"):
                    cursor.execute(statement)
                cursor.execute("PRAGMA foreign_keys = ON")


def run_verifier(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tlog.verifier", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def write(path: Path, content: str | dict[str, Any] | list[Any]) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def horizon_passed(*, timeout: float = 60.0) -> None:
    """Wait until the sequencer can see every committed event. On PostgreSQL it takes only
    events below the server-wide transaction horizon, which an open transaction in another
    database (another test worker) holds back for a while; a fixture that sequences once, for
    a fixed checkpoint layout, waits here first. SQLite has no horizon."""
    import time

    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
                " > coalesce((SELECT max(txid) FROM audit_auditevent), 0)"
            )
            if cursor.fetchone()[0]:
                return
            if time.monotonic() > deadline:
                raise AssertionError("the transaction horizon did not pass the test's events in time")
            time.sleep(0.05)


def sequence_all(*, timeout: float = 60.0) -> None:
    """Sequence until every committed event has a leaf. On PostgreSQL the sequencer waits for
    the server-wide transaction horizon, which other databases' open transactions hold back."""
    import time

    from audit.models import AuditEvent
    from audit.sequencer import sequence_pending

    deadline = time.monotonic() + timeout
    while True:
        sequence_pending()
        if not AuditEvent.objects.filter(leaf__isnull=True).exists():
            return
        if time.monotonic() > deadline:
            raise AssertionError("events were not sequenced in time")
        time.sleep(0.05)


def add_events(count: int, start: int = 0) -> None:
    """``count`` test events numbered from ``start``, each committed in its own transaction."""
    from django.db import transaction

    from audit import record
    from tests.factories import FACTORY_ACTOR

    for number in range(start, start + count):
        with transaction.atomic():
            record(actor=FACTORY_ACTOR, action="test:event", target=("test.thing", str(number)), data={"n": number})


def ten_sequenced_events() -> list[int]:
    """Ten events sequenced in batches of four, four and two (the caller turns off sequencing
    on commit); the event id at each leaf."""
    from audit.models import AuditEvent, AuditLeaf

    for batch in (4, 4, 2):
        add_events(batch, start=AuditEvent.objects.count())
        sequence_all()
    return list(AuditLeaf.objects.order_by("leaf_index").values_list("event_id", flat=True))


def witness_start(name: str, directory: Path, log_key: str) -> tuple[subprocess.Popen[str], dict[str, str], Path]:
    """A witness process (``python -m tlog.witness``) on a free port of 127.0.0.1 for the log of
    ``log_key``: the process, its ``AUDIT_WITNESSES`` entry, and its state file."""
    key = directory / f"{name.replace('/', '_')}.key"
    vkey = subprocess.run(
        [sys.executable, "-m", "tlog.witness", "generate-key", name, "--out", str(key)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    state = directory / f"{name.replace('/', '_')}-state.json"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tlog.witness", "serve", "--key", str(key), "--log-key", log_key),
            *("--state", str(state), "--listen", "127.0.0.1:0"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    address = process.stdout.readline().strip().removeprefix("listening on ")
    return process, {"url": f"http://{address}/add-checkpoint", "key": vkey}, state


def gate_reason_codes(cast: "Cast", digest: str) -> list[str]:
    """Why the gate answers as it does now: the reason codes of a production check of
    payments-api by its pipeline, asked in-process."""
    from releasegate import gate

    decision = gate.gate_check(
        acting_user=cast.pipeline.account, service=cast.payments_api, environment="production", digest=digest
    )
    return [reason["code"] for reason in decision.reasons]
