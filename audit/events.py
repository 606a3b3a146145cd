"""The canonical bytes of an audit event: what its Merkle leaf hash covers.

They are canonical JSON (see audit/canonical.py) of the event's columns, built by hand here
because verification runs over millions of rows and ``json.dumps`` of a dict per row would
dominate it. ``data`` is stored as canonical JSON already and is spliced in as it is.
Pure: the standalone verifier and evidence packs use it too.
"""

from datetime import UTC, datetime
from json.encoder import encode_basestring  # C-accelerated

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


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
    time_text = time if isinstance(time, str) else format_time(time)
    actor_id_text = "null" if actor_id is None else str(int(actor_id))
    return (
        '{"action":'
        + encode_basestring(action)
        + ',"actor":'
        + encode_basestring(actor)
        + ',"actor_id":'
        + actor_id_text
        + ',"data":'
        + data
        + ',"id":'
        + str(int(event_id))
        + ',"request_id":'
        + encode_basestring(request_id)
        + ',"target_id":'
        + encode_basestring(target_id)
        + ',"target_type":'
        + encode_basestring(target_type)
        + ',"time":'
        + encode_basestring(time_text)
        + "}"
    ).encode("utf-8")
