"""The database stopped and started again under gate load, on a Release Gate of its own
(tests/faults/services.py): the gate fails closed with JSON while the database is down, answers
again within seconds of its return, and leaves nothing half-recorded: every decision it
answered has its row and one audit event, and the audit trail verifies."""

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.faults.services import PrivatePostgres, PrivateService

pytestmark = [pytest.mark.serial]

DIGEST = "sha256:" + "5a" * 32  # the demo's payments-api 1.5.0 (releasegate/management/commands/seed_demo.py)
RECOVERY_SECONDS = 5.0


@dataclass
class Answer:
    started: float
    ended: float
    status: int
    content_type: str
    body: dict[str, Any]


@pytest.fixture
def private_stack(on_postgres: None, tmp_path: Path) -> Iterator[tuple[PrivatePostgres, PrivateService, str]]:
    database = PrivatePostgres()
    service = PrivateService(database.url, tmp_path)
    try:
        database.init()
        token = service.prepare()
        service.serve()
        yield database, service, token
    finally:
        service.stop()
        database.destroy()


def ask(base: str, token: str) -> Answer:
    body = json.dumps({"service": "payments-api", "environment": "production", "artifact_digest": DIGEST}).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{base}/api/v1/gate/check",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            status, content_type, raw = response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        with error:
            status, content_type, raw = error.code, error.headers.get("Content-Type", ""), error.read()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = {"not_json": raw[:200].decode("utf-8", "replace")}
    return Answer(started, time.monotonic(), status, content_type, parsed)


def psql(database: PrivatePostgres, sql: str) -> str:
    done = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(database.port), "-U", "postgres", "-d", "releasegate", "-Atc", sql],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_the_database_stopped_and_restarted_under_gate_load(
    private_stack: tuple[PrivatePostgres, PrivateService, str],
) -> None:
    database, service, token = private_stack
    decisions_before = int(psql(database, "SELECT count(*) FROM releasegate_gatedecision"))
    answers: list[Answer] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            answers.append(ask(service.base, token))
            time.sleep(0.02)

    workers = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for worker in workers:
        worker.start()
    time.sleep(2)
    database.stop("fast")
    down_from = time.monotonic()
    time.sleep(3)
    up_from = time.monotonic()
    database.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(a.status == 200 and a.started >= up_from for a in answers):
        time.sleep(0.05)
    time.sleep(1)
    stop.set()
    for worker in workers:
        worker.join(15)

    assert all(a.content_type.startswith("application/json") for a in answers), [
        (a.status, a.body) for a in answers if not a.content_type.startswith("application/json")
    ][:3]
    while_down = [a for a in answers if a.started > down_from and a.ended < up_from]
    assert while_down, "no gate check was answered while the database was down"
    assert {(a.status, a.body.get("code")) for a in while_down} == {(500, "server_error")}  # closed, never allow
    back = [a for a in answers if a.status == 200 and a.started >= up_from]
    assert back, "the gate did not answer again after the database came back"
    recovery = min(a.ended for a in back) - up_from
    assert recovery < RECOVERY_SECONDS, f"the gate answered again {recovery:.2f} s after the database came back"
    assert {a.body["decision"] for a in answers if a.status == 200} <= {"allow", "deny"}

    # Nothing half-recorded: every answered decision has its row and exactly one audit event.
    answered = {a.body["decision_id"] for a in answers if a.status == 200}
    rows = int(psql(database, "SELECT count(*) FROM releasegate_gatedecision")) - decisions_before
    assert rows == len(answered)
    orphans = psql(
        database,
        "SELECT count(*) FROM releasegate_gatedecision d WHERE (SELECT count(*) FROM audit_auditevent e "
        "WHERE e.target_type = 'releasegate.gatedecision' AND e.target_id = d.id::text) <> 1",
    )
    assert orphans == "0"
    service.manage("audit_sequence")
    assert "ok" in service.manage("audit_verify").lower()
