"""Health that tells the truth (issue 19, "What was seen" 5): /healthz is liveness and asks
nothing of the database, /readyz checks what the service needs, and with the database down both
and /metrics answer in their own formats, never an HTML 500, while the gate fails closed."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.utils import timezone

from tests.approvals.brokers import publishing_to
from tests.conftest import Cast
from tests.faults.brokers import hung_broker
from tests.faults.disks import fill, small_disk
from tests.faults.test_evidence_storage import evidence_dir  # noqa: F401 - a fixture
from tests.processes import free_port
from tests.releasegate.gate_support import check, ready_changelog


def json_of(response: Any) -> Any:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    return response.json()


def test_healthz_asks_nothing_of_the_database(db: None, django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        response = Client().get("/healthz")

    assert response.status_code == 200
    assert json_of(response) == {"status": "ok"}


def test_readyz_checks_the_database_broker_storage_audit_trail_and_clock(db: None) -> None:
    response = Client().get("/readyz")

    body = json_of(response)
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    checks = body["checks"]
    assert [checks[name]["ok"] for name in ("database", "broker", "storage")] == [True, True, True]
    assert abs(checks["database"]["clock"]["offset_seconds"]) < 5
    assert "warning" not in checks["database"]["clock"]
    assert checks["database"]["audit"]["ok"] is True


def test_readyz_is_not_ready_within_the_timeout_when_the_broker_hangs(db: None, settings: Any) -> None:
    settings.OUTBOX_PUBLISH_TIMEOUT_MS = 300
    with hung_broker() as url, publishing_to(url):
        started = time.monotonic()
        response = Client().get("/readyz")
        took = time.monotonic() - started

    assert response.status_code == 503
    assert json_of(response)["checks"]["broker"]["ok"] is False
    assert took < 2.5


def test_readyz_is_not_ready_when_evidence_storage_is_full(db: None, evidence_dir: Path) -> None:  # noqa: F811
    with small_disk(evidence_dir, size_kb=64) as disk:
        fill(disk)
        response = Client().get("/readyz")
        leftovers = [path.name for path in disk.rglob("*") if path.is_file() and path.name != "filler"]

    assert response.status_code == 503
    assert "storage_full" in json_of(response)["checks"]["storage"]["error"]
    assert leftovers == []


@pytest.mark.requirement("PR-12")
def test_a_web_clock_70_minutes_slow_is_reported_with_a_warning(db: None, settings: Any) -> None:
    settings.METRICS_PUBLIC = True
    with time_machine.travel(timezone.now() - timedelta(minutes=70), tick=True):
        ready = json_of(Client().get("/readyz"))
        scraped = Client().get("/metrics").content.decode()

    clock = ready["checks"]["database"]["clock"]
    assert -4300 < clock["offset_seconds"] < -4100
    assert "time synchronisation" in clock["warning"]
    [offset] = [line for line in scraped.splitlines() if line.startswith("releasegate_clock_offset_seconds ")]
    assert -4300 < float(offset.split()[1]) < -4100


@contextmanager
def database_unreachable() -> Iterator[None]:
    """The database stops answering: this process's connection points at a port nobody
    listens on (PostgreSQL refuses, as it does while restarting)."""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update({"HOST": "127.0.0.1", "PORT": str(free_port())})
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@pytest.mark.django_db(transaction=True)
def test_with_the_database_down_health_and_metrics_answer_in_their_formats_and_the_gate_fails_closed(
    cast: Cast, on_postgres: None, settings: Any
) -> None:
    settings.METRICS_PUBLIC = True
    ready_changelog(cast)
    client = cast.pipeline.client()
    client.raise_request_exception = False
    probe = Client(raise_request_exception=False)

    with database_unreachable():
        live = probe.get("/healthz")
        ready = probe.get("/readyz")
        scraped = probe.get("/metrics")
        gate = check(client)

    assert live.status_code == 200
    assert json_of(live) == {"status": "ok"}
    assert ready.status_code == 503
    assert json_of(ready)["checks"]["database"]["ok"] is False
    assert scraped.status_code == 200
    assert scraped["Content-Type"].startswith("text/plain")
    assert "releasegate_database_up 0" in scraped.content.decode()
    assert gate.status_code == 500
    assert json_of(gate)["code"] == "server_error"  # never an allow it could not decide

    assert check(client).json()["decision"] == "allow"  # back as soon as the database is
    assert probe.get("/readyz").status_code == 200
