"""Health that tells the truth (issue 19).

``/healthz`` is liveness: the process answers, and nothing else is asked (no database), so a
probe never restarts pods that a database outage would leave to recover by themselves.
``/readyz`` is readiness: the database answers (and how far its clock is from ours), the broker
accepts a connection within OUTBOX_PUBLISH_TIMEOUT_MS, evidence storage takes a write, and the
audit sequencer keeps up. Both are JSON, and neither runs inside the per-request transaction
(``ATOMIC_REQUESTS``): opening it is what turned a database outage into an HTML 500.
"""

import os
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import redis
from celery import current_app
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from redis.backoff import NoBackoff
from redis.retry import Retry

from audit.models import AuditEvent
from audit.sequencer import database_now
from changelogs.storage import evidence_storage, stored_write
from outbox.services import outbox_waiting, publish_timeouts


def _seconds(started: float) -> float:
    return round(time.monotonic() - started, 4)


def clock_offset_seconds() -> float:
    """This process's clock minus the database's (positive: ours is ahead). Business times
    come from the database's clock; a large offset still matters to logs and to clients."""
    before = time.time()
    database = database_now()
    after = time.time()
    ours = datetime.fromtimestamp((before + after) / 2, tz=UTC)
    return round((ours - database).total_seconds(), 3)


def check_database() -> dict[str, Any]:
    started = time.monotonic()
    try:
        offset = clock_offset_seconds()
        unsequenced = AuditEvent.objects.filter(leaf__isnull=True)
        oldest = unsequenced.order_by("id").values_list("created_at", flat=True).first()
        lag = (database_now() - oldest).total_seconds() if oldest else 0.0
        waiting, oldest_message = outbox_waiting()
        count = unsequenced.count() if oldest else 0
    except DatabaseError as error:
        connection.close()  # the next request starts from a fresh connection
        return {"ok": False, "seconds": _seconds(started), "error": f"{type(error).__name__}: {error}"[:300]}
    clock: dict[str, Any] = {"offset_seconds": offset, "warn_above_seconds": settings.CLOCK_OFFSET_WARN_SECONDS}
    if abs(offset) > settings.CLOCK_OFFSET_WARN_SECONDS:
        clock["warning"] = (
            f"this process's clock is {offset:+.1f} s from the database's; business times use the database's, "
            "but logs and clients see this one: fix the host's time synchronisation"
        )
    return {
        "ok": True,
        "seconds": _seconds(started),
        "clock": clock,
        "audit": {
            "unsequenced": count,
            "lag_seconds": round(lag, 3),
            "ok": lag <= settings.READYZ_AUDIT_LAG_SECONDS,
        },
        "outbox": {"waiting": waiting, "oldest_seconds": round(oldest_message, 3) if oldest_message else 0.0},
    }


def check_broker() -> dict[str, Any]:
    started = time.monotonic()
    if current_app.conf.task_always_eager:
        return {"ok": True, "seconds": 0.0, "mode": "eager (no broker)"}
    url = current_app.conf.broker_write_url or current_app.conf.broker_url
    timeout = settings.OUTBOX_PUBLISH_TIMEOUT_MS / 1000
    try:
        if urlsplit(url).scheme in {"redis", "rediss"}:
            # One PING, no retries: a SIGSTOPped Redis accepts connections and never answers,
            # and the client's own retries would multiply the wait.
            client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
            )
            try:
                client.ping()
            finally:
                client.close()
        else:
            with current_app.connection_for_write(**publish_timeouts()) as broker:
                broker.connect()
    except Exception as error:  # whatever the transport raises is "not reachable"
        return {"ok": False, "seconds": _seconds(started), "error": f"{type(error).__name__}: {error}"[:300]}
    return {"ok": True, "seconds": _seconds(started)}


def check_storage() -> dict[str, Any]:
    started = time.monotonic()
    storage = evidence_storage()
    key = f"readyz/{os.getpid()}-{secrets.token_hex(4)}"
    try:
        stored_write(storage, key, b"readyz\n")
        storage.delete(key)
    except Exception as error:  # full, read-only, unreachable: not ready to take evidence
        code = getattr(error, "code", type(error).__name__)
        return {"ok": False, "seconds": _seconds(started), "error": f"{code}: {error}"[:300]}
    return {"ok": True, "seconds": _seconds(started)}


@csrf_exempt
@transaction.non_atomic_requests
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: this process answers. Asks nothing of the database, broker or storage."""
    return JsonResponse({"status": "ok"})


@csrf_exempt
@transaction.non_atomic_requests
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when the database, the broker and storage answer and the audit trail
    keeps up; 503 with what failed otherwise. Always JSON."""
    checks = {"database": check_database(), "broker": check_broker(), "storage": check_storage()}
    ready = all(check["ok"] for check in checks.values())
    audit = checks["database"].get("audit")
    if audit is not None and not audit["ok"]:
        ready = False
    return JsonResponse({"status": "ready" if ready else "not_ready", "checks": checks}, status=200 if ready else 503)
