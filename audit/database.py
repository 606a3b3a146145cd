"""Prepared statements on Django's PostgreSQL connection, for the statements that nearly every
request pays for: the audit event insert (``audit.services``) and the gate's read and write
(``releasegate/gate_sql.py``).

Django's own cursors bind parameters on the client, so PostgreSQL parses and plans every
statement anew. A prepared statement is parsed and planned once per connection, which for
these short statements is a good part of what PostgreSQL spends on them. Behind PgBouncer
in transaction mode, prepared statements need PgBouncer 1.21 or later with
``max_prepared_statements`` set; ``DATABASE_PREPARED_STATEMENTS=0`` turns them off (the
statements are then planned every time, nothing else changes).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection

_NEVER = 2**31 - 1


class _PreparingCursor(psycopg.Cursor[Any]):
    """psycopg's cursor with server-side binding, preparing every statement it runs (or none,
    with ``DATABASE_PREPARED_STATEMENTS`` off)."""

    def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None
    ) -> Any:
        return super().execute(query, params, prepare=settings.DATABASE_PREPARED_STATEMENTS, binary=binary)


@contextmanager
def prepared_cursor() -> Iterator[Any]:
    """A preparing cursor on Django's default connection (PostgreSQL only): in the caller's
    transaction, with Django's error translation, execute wrappers and (with DEBUG) query
    log."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    database = connection.connection
    restore = database.prepare_threshold is None
    if restore:
        # Django turns psycopg's preparing off (None) so that connection poolers keep working,
        # which also ignores prepare=True. A threshold never reached lets explicit preparing
        # through for our statements; it is put back after them.
        database.prepare_threshold = _NEVER
    with connection.wrap_database_errors:
        raw = _PreparingCursor(database)
    # (django-stubs types these as taking Django's wrapper; they take the database's cursor.)
    wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    cursor = wrap(raw)  # type: ignore[arg-type]
    try:
        yield cursor
    finally:
        cursor.close()
        if restore:
            database.prepare_threshold = None
