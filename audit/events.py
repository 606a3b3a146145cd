"""The canonical bytes of an audit event: what its Merkle leaf hash covers.

They are canonical JSON (see audit/canonical.py) of the event's columns, built by hand here
because verification runs over millions of rows and ``json.dumps`` of a dict per row would
dominate it. ``data`` is stored as canonical JSON already and is spliced in as it is.
Pure: the standalone verifier and evidence packs use it too.
"""

from datetime import UTC, datetime
from json.encoder import encode_basestring  # C-accelerated

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
