"""The canonical bytes of an audit event: what its Merkle leaf hash covers.

They are canonical JSON (see tlog/canonical.py) of the event's columns, built by hand here
because verification runs over millions of rows and ``json.dumps`` of a dict per row would
dominate it. ``data`` is stored as canonical JSON already and is spliced in as it is.
Pure: the standalone verifier and evidence packs use it too.
"""

from datetime import UTC, datetime
from json.encoder import encode_basestring  # C-accelerated
from typing import Any

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# The same text as format_time, computed by PostgreSQL from a timestamptz column (``{}``):
# the sequencer and verification read it ready-made instead of building a datetime per row.
# Schema-qualified so that nothing earlier on the search_path can stand in for it.
POSTGRES_TIME_SQL = "pg_catalog.to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

# Keys in sorted order: action, actor, actor_id, data, id, request_id, target_id, target_type,
# time. The values are, in that order: the JSON string of action and actor, the actor id's
# digits or null, data as stored, the id, the JSON strings of request_id, target_id,
# target_type and the time text. Bulk code fills it in directly; everything else calls
# canonical_event, which fills in the same template.
EVENT_TEMPLATE = (
    '{"action":%s,"actor":%s,"actor_id":%s,"data":%s,"id":%d,"request_id":%s,"target_id":%s,"target_type":%s,"time":%s}'
)


# The same bytes built by PostgreSQL from the columns of an audit_auditevent row, so that
# verification can have the server hash every event (audit/scan.py). Strings are escaped by
# to_json, which escapes exactly what encode_basestring (ensure_ascii off) escapes: '"', '\'
# and U+0001..U+001F (U+0000 cannot be stored in PostgreSQL text), the usual five as \b \f \n
# \r \t and the others as \u00xx in lowercase hex; U+007F, U+2028, U+2029 and characters
# beyond the BMP go through as they are. Few events have anything to escape: when the five
# strings together have nothing (to_json of their concatenation is that concatenation between
# quotes; escaping goes character by character), each string goes between quotes as it is,
# the same text as to_json's with four function calls fewer per row. "Nothing to escape" is
# told by length: to_json copies every other character as it is and writes each escaped one
# as two bytes or more, so its text is exactly 2 bytes longer than the concatenation (the
# quotes) only when nothing was escaped; comparing two lengths saves building and comparing
# the quoted text. The time text (digits
# and "-T:.Z") never has anything to escape. The numbers are bigint, whose text is Python's
# str(int). tests/audit/test_event_sql.py proves the bytes equal canonical_event's.
_STRING, _TIME = "string", "time"
_EVENT_VALUES = (  # EVENT_TEMPLATE's values in its order: a string column, the time, or SQL
    ("action", _STRING),
    ("actor", _STRING),
    ("actor_id", "COALESCE(actor_id::pg_catalog.text, 'null')"),
    ("data", "data"),
    ("id", "id::pg_catalog.text"),
    ("request_id", _STRING),
    ("target_id", _STRING),
    ("target_type", _STRING),
    ("time", _TIME),
)


def _event_sql(*, escape: bool) -> str:
    """EVENT_TEMPLATE as one SQL concatenation; strings through to_json if ``escape``, else
    between quotes as they are."""
    constants = EVENT_TEMPLATE.replace("%d", "%s").split("%s")  # the text around the values
    items: list[tuple[bool, str]] = [(True, constants[0])]  # (a literal?, text)
    for (name, value), constant in zip(_EVENT_VALUES, constants[1:], strict=True):
        if value == _TIME:
            items += [(True, '"'), (False, POSTGRES_TIME_SQL.format("created_at")), (True, '"')]
        elif value == _STRING and escape:
            items.append((False, f"pg_catalog.to_json({name}::pg_catalog.text)::pg_catalog.text"))
        elif value == _STRING:
            items += [(True, '"'), (False, f"{name}::pg_catalog.text"), (True, '"')]
        else:
            items.append((False, value))
        items.append((True, constant))
    merged: list[tuple[bool, str]] = []
    for literal, text in items:
        if literal and merged and merged[-1][0]:
            merged[-1] = (True, merged[-1][1] + text)
        else:
            merged.append((literal, text))
    if any(literal and ("'" in text or "\\" in text) for literal, text in merged):
        raise ValueError("EVENT_TEMPLATE must not need quoting in SQL")
    return " || ".join(f"'{text}'" if literal else text for literal, text in merged)


_ALL_STRINGS = "(" + " || ".join(f"{name}::pg_catalog.text" for name, value in _EVENT_VALUES if value == _STRING) + ")"
POSTGRES_EVENT_SQL = (
    f"CASE WHEN pg_catalog.octet_length(pg_catalog.to_json({_ALL_STRINGS})::pg_catalog.text)"
    f" = pg_catalog.octet_length({_ALL_STRINGS}) + 2"
    f" THEN {_event_sql(escape=False)} ELSE {_event_sql(escape=True)} END"
)
"""The canonical event text of the audit_auditevent row in scope (columns unqualified)."""

POSTGRES_LEAF_HASH_SQL = (
    "pg_catalog.sha256(pg_catalog.decode('00', 'hex') || pg_catalog.convert_to(" + POSTGRES_EVENT_SQL + ", 'UTF8'))"
)
"""Its leaf hash, SHA-256(0x00 || the UTF-8 bytes), computed by PostgreSQL: 32 bytes, or NULL
when a column the bytes need is NULL. Only for a database whose encoding is UTF8."""


def format_time(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return value.astimezone(UTC).strftime(_TIME_FORMAT)


def canonical_event(
    *,
    event_id: int,
    time: datetime | str,
    actor: str,
    actor_id: int | None,
    action: str,
    target_type: str,
    target_id: str,
    data: str,
    request_id: str,
) -> bytes:
    """Keys in sorted order: action, actor, actor_id, data, id, request_id, target_id,
    target_type, time."""
    if not isinstance(data, str):
        raise TypeError(f"event data must be canonical JSON text, not {type(data).__name__}")
    time_text = time if isinstance(time, str) else format_time(time)
    actor_id_text = "null" if actor_id is None else str(int(actor_id))
    return (
        EVENT_TEMPLATE
        % (
            encode_basestring(action),
            encode_basestring(actor),
            actor_id_text,
            data,
            int(event_id),
            encode_basestring(request_id),
            encode_basestring(target_id),
            encode_basestring(target_type),
            encode_basestring(time_text),
        )
    ).encode("utf-8")


# The columns of an audit event row, in the order event_bytes reads them.
EVENT_COLUMNS = (
    "id",
    "created_at",
    "actor",
    "actor_id",
    "action",
    "target_type",
    "target_id",
    "data",
    "request_id",
    "txid",
)


def event_bytes(row: tuple[Any, ...]) -> bytes:
    """Canonical bytes of an event given as a row of EVENT_COLUMNS."""
    event_id, created_at, actor, actor_id, action, target_type, target_id, data, request_id, _ = row
    return canonical_event(
        event_id=event_id,
        time=created_at,
        actor=actor,
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        data=data,
        request_id=request_id,
    )
