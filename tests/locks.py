"""Showing that a service takes its lock itself: run it in a second thread (its own connection)
while this one holds the row, and see that it waits (PostgreSQL only: SQLite has no row locks)."""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections, transaction


def run_against_held_lock(
    *, hold: Callable[[], Any], act: Callable[[], Any], then: Callable[[], Any]
) -> list[Exception]:
    """In one transaction: ``hold`` the lock, start ``act`` in a thread (in a transaction of its
    own), check it is still waiting a second later, run ``then`` and commit. Returns what
    ``act`` raised, after it finished."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    raised: list[Exception] = []
    done = threading.Event()

    def acting() -> None:
        try:
            with transaction.atomic():
                act()
        except Exception as error:  # handed back to the test, which asserts on it
            raised.append(error)
        finally:
            done.set()
            connections.close_all()

    with transaction.atomic():
        hold()
        thread = threading.Thread(target=acting)
        thread.start()
        assert not done.wait(timeout=1.0), "the service did not wait for the lock"
        then()
    thread.join(timeout=10)
    assert done.is_set()
    return raised
