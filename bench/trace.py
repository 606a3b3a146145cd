"""Where a request's time goes, for bench/gate_tail.py (bench-only; served only when
bench/gate.py's server runs with ``BENCH_GATE_TRACE=1``).

The middleware, first in the chain, answers with an ``X-Bench-Trace`` header: the system-wide
monotonic clock (``time.monotonic``, CLOCK_MONOTONIC, the clock the paced client reads too) when
the request reached Django and when its answer left the chain, the time its worker spent in
Python's garbage collector meanwhile, the worker's pid, and the time of each SQL statement it
sent (Django's execute wrappers: the gate's read and write, the trivial endpoint's token lookup
and SELECT; not the health check, ``BEGIN`` or ``COMMIT``)."""

import gc
import os
import time
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse


class _Collector:
    """Milliseconds spent in the garbage collector since the last reset (gc.callbacks)."""

    def __init__(self) -> None:
        self.ms = 0.0
        self.collections = 0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.ms += (time.perf_counter() - self._started) * 1000
            self.collections += 1


class TraceMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.collector = _Collector()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.monotonic()
        self.collector.ms, self.collector.collections = 0.0, 0
        statements: list[float] = []

        def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            at = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                statements.append((time.perf_counter() - at) * 1000)

        with connection.execute_wrapper(timed):
            response = self.get_response(request)
        ended = time.monotonic()
        response["X-Bench-Trace"] = (
            f"{started:.6f} {ended:.6f} {self.collector.ms:.3f} {self.collector.collections} {os.getpid()} "
            + ",".join(f"{ms:.3f}" for ms in statements)
        )
        return response
