"""Threads that start while a tracer (coverage) is on and the suite's audit hooks listen.

On CPython 3.11 a new thread installs the tracer's trace function (``threading.settrace``) as
it starts, and ``sys.settrace`` refuses with ``RuntimeError: Cannot install a trace function
while another trace function is being installed`` when another thread is inside
``sys.settrace`` at that moment. A Python audit hook (tests/outside_reads.py,
tests/network_guard.py) runs Python inside ``sys.settrace``, where the interpreter may hand
over to the other thread (python/cpython gh-98257; reentrant since 3.12). Seen once in CI's
PostgreSQL pass under ``--cov``: a live server's request thread died before serving Chromium.

A refused install changed nothing (the thread has run none of its code yet), so installing
again once the other thread is through is exact, not a retry that hides a failure."""

import sys
import threading
import time
from typing import Any

BEING_INSTALLED = "another trace function is being installed"
ATTEMPTS = 200


class _SysWithPatientSettrace:
    """``sys``, except that ``settrace`` waits for another thread's install to finish."""

    def __getattr__(self, name: str) -> Any:
        return getattr(sys, name)

    @staticmethod
    def settrace(function: Any) -> None:
        for _ in range(ATTEMPTS - 1):
            try:
                sys.settrace(function)
            except RuntimeError as error:
                if BEING_INSTALLED not in str(error):
                    raise
                time.sleep(0.001)
            else:
                return
        sys.settrace(function)


def patient_trace_installs() -> None:
    """Makes the two places that install trace functions in new threads (threading's start-up
    and coverage's collector) wait for another install instead of dying, on a CPython with
    the race."""
    if sys.version_info >= (3, 12):
        return
    assert isinstance(threading._sys, type(sys)), "threading no longer calls settrace through _sys"  # type: ignore[attr-defined]
    threading._sys = _SysWithPatientSettrace()  # type: ignore[attr-defined]
    # A test dependency, imported here because xdist workers start coverage after the conftest.
    import coverage.collector

    coverage.collector.sys = _SysWithPatientSettrace()  # type: ignore[attr-defined]
