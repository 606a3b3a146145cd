"""On PostgreSQL verification has the database server hash every event (audit/scan.py), from
SQL that builds the canonical event text (audit.events.POSTGRES_EVENT_SQL). Those must be the
bytes canonical_event builds, byte for byte, whatever the event holds: otherwise a stored hash
could agree with the server and not with Python, and the fast path would pass a leaf the
leaf-by-leaf walk fails (tests/audit/test_verify_paths.py shows that such a difference would
not go unnoticed there either)."""

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from json.encoder import encode_basestring
from typing import Any

import pytest
from django.db import DataError, connection, transaction

from audit.events import POSTGRES_EVENT_SQL, POSTGRES_LEAF_HASH_SQL, POSTGRES_TIME_SQL, canonical_event, format_time
from tests.audit.support import triggers_bypassed
from tlog.merkle import leaf_hash

pytestmark = pytest.mark.django_db

CONTROLS = "".join(chr(code) for code in range(1, 0x20))  # U+0000 cannot be stored (below)
STRINGS = [
    "",
    "changelog:submitted",
    CONTROLS,
    *(f"a{chr(code)}b" for code in range(1, 0x20)),
    '"',
    "\\",
    '\\"',
    '"\\',
    '\\u0000 \\n \\" \\\\',  # escapes written out: text, not escapes
    "/ </script> \\/",
    "'; DROP TABLE audit_auditevent; --",
    "%s %(x)s {} {0}",
    "\x7f",
    "\x80\x85\x9f",  # C1 controls
    "\u2028",
    "\u2029",
    "line\u2028separator\u2029paragraph",
    "\ufeff\ufffe\uffff",
    "\ud7ff\ue000",  # either side of the surrogates
    "😀",
    "👩\u200d👩\u200d👧\u200d👦",
    "\U0001f1e9\U0001f1ea",  # a flag: two regional indicators
    "\U00010000\U0010ffff",
    "שלום עולם",
    "مرحبا بالعالم",
    "\u202eevil\u202c \u200f\u200e",  # bidirectional overrides and marks
    "e\u0301",  # a combining accent
    "Ω≈ç√∫µ≤≥÷ 漢字 한국어",
]
MAX_LENGTHS = {"actor": 200, "action": 100, "target_type": 100, "target_id": 100, "request_id": 64}
LONG = [  # as long as each column takes: the longest strings there can be
    CONTROLS * 7,
    '"\\' * 100,
    "😀" * 200,
    "\u2028" * 200,
    "x" * 200,
]
DATA = [
    '{"n":1}',
    "{}",
    '{"a":"\\u0001\\"\\\\ \\u2028 😀","b":[1,2.5,null,true]}',
    'not canonical JSON at all: it is spliced in as it is \x01 " \\ \u2028',
    '{"big":"' + "é😀\\u0000" * 100_000 + '"}',
]
ACTOR_IDS = [None, 0, -1, 1, 7, 2**63 - 1, -(2**63)]
EVENT_IDS = [-(2**63), -5, 0, 2**62, 2**63 - 1]


def _events() -> list[dict[str, Any]]:
    """Every adversarial string in every string column at once (each cut to its column's
    length), in one column among plain ones, the longest strings, odd data, actor ids and
    event ids."""
    plain = {"actor": "user:alice", "action": "test:event", "target_type": "test.thing", "target_id": "1"}
    events: list[dict[str, Any]] = []
    for number, text in enumerate(STRINGS + LONG):
        events.append({**{column: text[:length] for column, length in MAX_LENGTHS.items()}, "actor_id": None})
        column = list(MAX_LENGTHS)[number % len(MAX_LENGTHS)]
        events.append({**plain, "request_id": "r", column: text[: MAX_LENGTHS[column]], "actor_id": number})
    for data in DATA:
        events.append({**plain, "request_id": "", "data": data, "actor_id": 3})
    for actor_id in ACTOR_IDS:
        events.append({**plain, "request_id": "", "actor_id": actor_id})
    for event_id in EVENT_IDS:
        events.append({**plain, "request_id": "", "actor_id": 1, "id": event_id})
    for event in events:
        event.setdefault("data", '{"n":1}')
    return events


_INSERT = (
    "INSERT INTO audit_auditevent (actor, actor_id, action, target_type, target_id, data, request_id)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id"
)
_INSERT_WITH_ID = (
    "INSERT INTO audit_auditevent (id, actor, actor_id, action, target_type, target_id, data, request_id)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)


def _insert(event: dict[str, Any]) -> int:
    values = [event[c] for c in ("actor", "actor_id", "action", "target_type", "target_id", "data", "request_id")]
    with connection.cursor() as cursor:
        if "id" in event:
            cursor.execute(_INSERT_WITH_ID, [event["id"], *values])
        else:
            cursor.execute(_INSERT, values)
        event_id: int = cursor.fetchone()[0]
    return event_id


def _server_view(event_ids: list[int], *, times: bool = True) -> dict[int, tuple[Any, str, bytes, bytes]]:
    """Per event: its time (None unless ``times``: Python has no datetime for some), the time
    text, and the canonical bytes and leaf hash the server builds."""
    sql = (
        "SELECT id, "  # noqa: S608 - built from constants only
        + ("created_at" if times else "NULL")
        + ", "
        + POSTGRES_TIME_SQL.format("created_at")
        + ", pg_catalog.convert_to("
        + POSTGRES_EVENT_SQL
        + ", 'UTF8'), "
        + POSTGRES_LEAF_HASH_SQL
        + " FROM audit_auditevent WHERE id = ANY(%s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [event_ids])
        return {row[0]: (row[1], row[2], bytes(row[3]), bytes(row[4])) for row in cursor.fetchall()}


def _python_bytes(event: dict[str, Any], event_id: int, time: datetime | str) -> bytes:
    return canonical_event(
        event_id=event_id,
        time=time,
        actor=event["actor"],
        actor_id=event["actor_id"],
        action=event["action"],
        target_type=event["target_type"],
        target_id=event["target_id"],
        data=event["data"],
        request_id=event["request_id"],
    )


def test_the_server_builds_exactly_the_canonical_bytes_of_adversarial_events(on_postgres: None) -> None:
    events = _events()
    ids = [_insert(event) for event in events]

    server = _server_view(ids)

    assert len(server) == len(events)
    for event, event_id in zip(events, ids, strict=True):
        created_at, time_text, server_bytes, server_hash = server[event_id]
        expected = _python_bytes(event, event_id, created_at)
        assert time_text == format_time(created_at)
        assert server_bytes == expected, (event, server_bytes[:300], expected[:300])
        assert server_hash == leaf_hash(expected) == hashlib.sha256(b"\x00" + server_bytes).digest()


def test_the_server_formats_odd_times_as_the_exact_walk_reads_them(on_postgres: None) -> None:
    """Times that only someone bypassing the trigger can store. Where Python has no datetime
    for them (BC, after 9999), the exact walk takes the time text from the server too."""
    times = [
        "0001-01-01 00:00:00+00",
        "9999-12-31 23:59:59.999999+00",
        "2026-11-27 09:15:02+00",  # no fraction: still six digits
        "2026-11-27 09:15:02.000001+00",
        "2030-03-31 01:30:00.0005-09:30",
        "1969-07-20 20:17:40.12+00",
        "0044-03-15 12:00:00+00 BC",
        "12345-06-07 08:09:10.111213+00",
    ]
    plain = {"actor": "user:alice", "action": "test:event", "target_type": "test.thing", "target_id": "1"}
    event = {**plain, "actor_id": 1, "data": "{}", "request_id": ""}
    ids = []
    with triggers_bypassed() as cursor:
        for time in times:
            cursor.execute(
                "INSERT INTO audit_auditevent (created_at, actor, actor_id, action, target_type, target_id, data,"
                " request_id) VALUES (%s::timestamptz, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                [time, event["actor"], 1, event["action"], event["target_type"], event["target_id"], "{}", ""],
            )
            ids.append(cursor.fetchone()[0])

    server = _server_view(ids, times=False)

    for event_id in ids:
        _, time_text, server_bytes, server_hash = server[event_id]
        expected = _python_bytes(event, event_id, time_text)
        assert server_bytes == expected
        assert server_hash == leaf_hash(expected)
    assert server[ids[2]][1] == "2026-11-27T09:15:02.000000Z"
    assert server[ids[4]][1] == format_time(
        datetime(2030, 3, 31, 1, 30, 0, 500, tzinfo=timezone(-timedelta(hours=9.5)))
    )
    assert server[ids[4]][1] == format_time(datetime(2030, 3, 31, 11, 0, 0, 500, tzinfo=UTC))


def test_to_json_escapes_every_character_exactly_as_python_does(on_postgres: None) -> None:
    """All of Unicode but U+0000 and the surrogates (which text cannot hold): the escaping is
    character by character on both sides, so this is the whole of it."""
    codes = [code for code in range(1, 0x110000) if not 0xD800 <= code <= 0xDFFF]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_catalog.string_agg(pg_catalog.to_json(pg_catalog.chr(code))::pg_catalog.text, E'\\n'"
            " ORDER BY code) FROM pg_catalog.generate_series(1, 1114111) AS code"
            " WHERE code NOT BETWEEN 55296 AND 57343"
        )
        server = cursor.fetchone()[0].split("\n")  # escaped everywhere else

    python = [encode_basestring(chr(code)) for code in codes]
    assert len(server) == len(python) == len(codes)
    different = [(hex(code), s, p) for code, s, p in zip(codes, server, python, strict=True) if s != p]
    assert different == []
    assert server[0x0A - 1] == '"\\n"'
    assert server[0x1F - 1] == '"\\u001f"'
    assert server[0x7F - 1] == '"\x7f"'
    assert server[0x2028 - 1] == '"\u2028"'


def test_text_cannot_hold_u0000(on_postgres: None) -> None:
    with pytest.raises(DataError), transaction.atomic():
        _insert(
            {
                "actor": "user:a\x00b",
                "actor_id": 1,
                "action": "a",
                "target_type": "t",
                "target_id": "1",
                "data": "{}",
                "request_id": "",
            }
        )
