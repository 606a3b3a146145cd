"""Writing to the audit trail."""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models, transaction

from audit.context import current_request_id
from audit.database import prepared_cursor
from audit.models import AuditEvent
from core.actors import ActingUser, Actor
from tlog.canonical import canonical_json

SYSTEM = Actor("system:releasegate")


def actor_of(actor: ActingUser | Actor) -> Actor:
    if isinstance(actor, Actor):
        return actor
    name = getattr(actor, "audit_actor", None)
    if not name or getattr(actor, "pk", None) is None:
        raise TypeError(f"cannot record {actor!r} as an audit actor")
    return Actor(name=name, id=actor.pk)


def target_of(target: models.Model | tuple[str, str]) -> tuple[str, str]:
    if isinstance(target, tuple):
        return target
    meta = target._meta
    return f"{meta.app_label}.{meta.model_name}", str(target.pk)


def canonical_data(data: Mapping[str, Any] | None) -> str:
    # Round trip through Django's encoder so dates, UUIDs and decimals get one stable form.
    plain = json.loads(json.dumps(dict(data or {}), cls=DjangoJSONEncoder))
    return canonical_json(plain).decode("utf-8")


@dataclass(frozen=True)
class EventRow:
    """The columns of one audit event as the application writes them, by name (the database
    stamps ``created_at`` and ``txid``)."""

    actor: str
    actor_id: int | None
    action: str
    target_type: str
    target_id: str
    data: str  # canonical JSON
    request_id: str


def event_row(
    *,
    actor: ActingUser | Actor,
    action: str,
    target: models.Model | tuple[str, str],
    data: Mapping[str, Any] | None,
    one_statement: bool = False,
) -> EventRow:
    """The event ``event_record`` appends, for a writer that inserts it in the same statement
    as its own change (the gate, whose every answer is audited). That writer must insert it in
    the transaction of the change and then call ``event_inserted``. ``one_statement``: the
    writer inserts the event in the very statement that makes the change, which is a
    transaction of its own even outside an atomic block (the gate's write on PostgreSQL)."""
    if not one_statement and not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit events are recorded inside the transaction of the change they record")
    who = actor_of(actor)
    target_type, target_id = target_of(target)
    return EventRow(
        actor=who.name,
        actor_id=who.id,
        action=str(action),
        target_type=target_type,
        target_id=target_id,
        data=canonical_data(data),
        request_id=current_request_id.get(),
    )


def event_inserted() -> None:
    """What follows any insert of an event: sequencing after commit, when configured so."""
    if settings.AUDIT_SEQUENCE_ON_COMMIT:
        _sequence_once_after_commit(transaction.get_connection())


def event_record(
    *, actor: ActingUser | Actor, action: str, target: models.Model | tuple[str, str], data: Mapping[str, Any] | None
) -> AuditEvent:
    """Append an event in the caller's transaction: it commits or rolls back with the change."""
    row = event_row(actor=actor, action=action, target=target, data=data)
    connection = transaction.get_connection()
    values = [getattr(row, column) for column in _EVENT_COLUMNS]
    with prepared_cursor() if connection.vendor == "postgresql" else connection.cursor() as cursor:
        cursor.execute(_event_insert_sql(connection.alias), values)
        (event_id,) = cursor.fetchone()
    event_inserted()
    # The database stamps created_at and txid: they stay deferred and load when read.
    return AuditEvent.from_db(connection.alias, ["id", *_EVENT_COLUMNS], [event_id, *values])


_EVENT_COLUMNS = tuple(column.name for column in fields(EventRow))


@cache
def _event_insert_sql(alias: str) -> str:
    """Every audited change pays for this insert, so it skips the ORM (whose create took about
    a quarter of an audited write's time in bench/audit.py) and, on PostgreSQL, is prepared
    (audit/database.py)."""
    quote = connections[alias].ops.quote_name
    columns = ", ".join(quote(column) for column in _EVENT_COLUMNS)
    placeholders = ", ".join(["%s"] * len(_EVENT_COLUMNS))
    return (  # names from the model, values bound as parameters
        f"INSERT INTO {quote(AuditEvent._meta.db_table)} ({columns}) VALUES ({placeholders}) "  # noqa: S608
        f"RETURNING {quote(AuditEvent._meta.pk.column)}"
    )


# What sequences committed events where no beat runs (the embedded default), set by
# audit.apps once the app is ready: the sequencer records its alarms through this module, so
# this module does not import the sequencer.
sequence_pending_hook: Callable[[], object] | None = None


def _sequence_after_commit() -> None:
    if sequence_pending_hook is not None:
        sequence_pending_hook()


def _sequence_once_after_commit(connection: Any) -> None:
    pending = getattr(connection, "run_on_commit", [])
    if not any(entry[1] is _sequence_after_commit for entry in pending):
        # robust: the change is already committed; a sequencing failure is retried by the next
        # sequencing run and must not turn the caller's success into an error.
        transaction.on_commit(_sequence_after_commit, robust=True)
