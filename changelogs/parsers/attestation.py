"""Security attestation: the signed-off facts of a manual security test (a pentest).

The report itself (a PDF) is uploaded as a ``document``; this small form, in JSON or YAML,
states who tested, when, what, and what they found, and who signed it off. Release Gate reads
it strictly: every field below is required unless marked optional, unknown fields are refused,
and any problem is an ``invalid_attestation`` error pointing at the field (``$.findings.high``).

.. code-block:: yaml

    schema: release-gate/security-attestation/v1   # exactly this string
    tester_name: Jane Doe                          # who did the testing
    tester_firm: Example Security Ltd              # their firm (or "internal")
    test_start: 2026-11-16                         # ISO dates, YYYY-MM-DD
    test_end: 2026-11-20                           # not before test_start
    scope:                                         # a string, or a non-empty list of strings
      - payments-api 1.4.2 public REST API
      - payments admin UI
    findings:                                      # exactly these five, whole numbers >= 0
      critical: 0
      high: 0
      medium: 2
      low: 3
      info: 1
    report_sha256: 9f86d08...                      # optional: SHA-256 (64 hex) of the report
    signed_off_by: John Smith                      # who accepted the result
    signed_off_at: 2026-11-21T09:30:00Z            # ISO 8601 date-time with a UTC offset,
                                                   # on or after test_end

Text fields are 1-200 characters (scope entries up to 500), without control characters.
``signed_off_at`` is normalised to UTC (``...Z``) in the summary. Dates in the future are not
checked here (a parser has no clock); the policy does that. YAML anchors/aliases, custom tags,
duplicate keys and several documents in one file are refused. Verdict: ``info`` (the policy
weighs the findings).
"""

import re
from collections.abc import Hashable
from datetime import UTC, date, datetime
from typing import Any, NoReturn

import yaml

from changelogs.parsers._common import (
    MAX_NESTING,
    check_count,
    check_json_limits,
    decode_text,
    fail,
    first_char,
    key_path,
    line_column,
    load_json_text,
)
from changelogs.parsers.errors import ParseErrorCode
from changelogs.parsers.summaries import SecurityAttestationSummary

PARSER_VERSION = "attestation/1"
FORMAT = "security_attestation"
SCHEMA = "release-gate/security-attestation/v1"
MAX_BYTES = 256 * 1024

FINDING_SEVERITIES = ("critical", "high", "medium", "low", "info")
_REQUIRED = (
    "schema",
    "tester_name",
    "tester_firm",
    "test_start",
    "test_end",
    "scope",
    "findings",
    "signed_off_by",
    "signed_off_at",
)
_OPTIONAL = ("report_sha256",)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_FINDINGS = 100_000
_MAX_YAML_EVENTS = 10_000


def _invalid(path: str, message: str) -> NoReturn:
    fail(ParseErrorCode.INVALID_ATTESTATION, message, path)


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool | date) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"found duplicate key {key!r}", key_node.start_mark)
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str) -> Any:
    # A first pass over the event stream refuses aliases and deep nesting early: PyYAML's pure
    # Python scanner slows down quadratically with flow nesting ("[[[[..."), so the depth
    # must be stopped while it is still small, before the document is composed.
    depth = 0
    events = 0
    try:
        for event in yaml.parse(text, Loader=_StrictLoader):
            mark = event.start_mark
            location = line_column(mark.line + 1, mark.column + 1) if mark else None
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                fail(
                    ParseErrorCode.FORBIDDEN_YAML_CONSTRUCT,
                    "YAML anchors and aliases are not accepted in an attestation.",
                    location,
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    fail(ParseErrorCode.TOO_DEEP, f"The YAML nests more than {MAX_NESTING} levels deep.", location)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            events += 1
            check_count(events, "YAML nodes", _MAX_YAML_EVENTS)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = line_column(mark.line + 1, mark.column + 1) if mark else None
        fail(
            ParseErrorCode.MALFORMED_YAML,
            f"The YAML is not valid ({exc.problem or exc}).",
            location,
        )
    except yaml.YAMLError as exc:
        fail(ParseErrorCode.MALFORMED_YAML, f"The YAML is not valid ({exc}).")
    except RecursionError:  # pragma: no cover - the event pass stops deep documents first
        fail(ParseErrorCode.TOO_DEEP, "The YAML nests too deeply.")


def parse(data: bytes) -> SecurityAttestationSummary:
    if len(data) > MAX_BYTES:
        fail(
            ParseErrorCode.TOO_LARGE,
            f"An attestation is a short form; this file is {len(data)} bytes (limit {MAX_BYTES}).",
        )
    text = decode_text(data)
    if first_char(text) in ("{", "["):
        document = load_json_text(text, what="security attestation")
    elif first_char(text) == "<":
        fail(ParseErrorCode.WRONG_FORMAT, "Expected a JSON or YAML attestation but this is XML.")
    else:
        document = _load_yaml(text)
        check_json_limits(document)
    schema = document.get("schema") if isinstance(document, dict) else None
    if isinstance(schema, str) and schema.startswith("release-gate/security-attestation/") and schema != SCHEMA:
        fail(
            ParseErrorCode.UNSUPPORTED_VERSION,
            f"This attestation uses schema {schema!r}; this Release Gate reads {SCHEMA}.",
            "$.schema",
        )
    if not isinstance(document, dict) or schema != SCHEMA:
        fail(
            ParseErrorCode.WRONG_FORMAT,
            f"This is not a security attestation: it must be a mapping with schema: {SCHEMA}.",
            "$.schema",
        )
    for key in document:
        if not isinstance(key, str) or key not in _REQUIRED + _OPTIONAL:
            _invalid(f"$.{key}", f"Unknown field {key!r}; allowed: {', '.join(_REQUIRED + _OPTIONAL)}.")
    for key in _REQUIRED:
        if document.get(key) is None:
            _invalid(f"$.{key}", f"The field {key!r} is required.")

    test_start = _date(document["test_start"], "$.test_start")
    test_end = _date(document["test_end"], "$.test_end")
    if test_end < test_start:
        _invalid("$.test_end", "test_end is before test_start.")
    signed_off_at = _datetime(document["signed_off_at"], "$.signed_off_at")
    if signed_off_at.date() < test_end:
        _invalid("$.signed_off_at", "signed_off_at is before the end of testing (test_end).")
    report_sha256 = document.get("report_sha256")
    if report_sha256 is not None:
        if not isinstance(report_sha256, str) or not _SHA256.fullmatch(report_sha256):
            _invalid("$.report_sha256", "report_sha256 must be 64 hexadecimal characters (a SHA-256).")
        report_sha256 = report_sha256.lower()
    return SecurityAttestationSummary(
        format=FORMAT,
        parser_version=PARSER_VERSION,
        schema=SCHEMA,
        tester_name=_text(document["tester_name"], "$.tester_name"),
        tester_firm=_text(document["tester_firm"], "$.tester_firm"),
        test_start=test_start.isoformat(),
        test_end=test_end.isoformat(),
        scope=_scope(document["scope"]),
        findings=_findings(document["findings"]),
        report_sha256=report_sha256,
        signed_off_by=_text(document["signed_off_by"], "$.signed_off_by"),
        signed_off_at=signed_off_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    )


def _text(value: Any, path: str, *, limit: int = 200) -> str:
    if not isinstance(value, str):
        _invalid(path, f"{path} must be text.")
    stripped = value.strip()
    if not stripped or len(stripped) > limit:
        _invalid(path, f"{path} must be 1 to {limit} characters.")
    if _CONTROL.search(stripped):
        _invalid(path, f"{path} must not contain control characters.")
    return stripped


def _scope(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (_text(value, "$.scope", limit=500),)
    if not isinstance(value, list) or not value or len(value) > 100:
        _invalid("$.scope", "scope must be text or a list of 1 to 100 texts.")
    return tuple(_text(item, f"$.scope[{i}]", limit=500) for i, item in enumerate(value))


def _findings(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        _invalid(
            "$.findings",
            f"findings must be a mapping of {', '.join(FINDING_SEVERITIES)} to counts.",
        )
    for key in value:
        if key not in FINDING_SEVERITIES:
            _invalid(
                key_path("$.findings", str(key)),
                f"Unknown severity {key!r}; allowed: {', '.join(FINDING_SEVERITIES)}.",
            )
    counts: dict[str, int] = {}
    for severity in FINDING_SEVERITIES:
        path = f"$.findings.{severity}"
        count = value.get(severity)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= _MAX_FINDINGS:
            _invalid(path, f"{path} must be a whole number from 0 to {_MAX_FINDINGS}.")
        counts[severity] = count
    return counts


def _date(value: Any, path: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value  # YAML reads an unquoted 2026-11-20 as a date already
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    _invalid(path, f"{path} must be a date written YYYY-MM-DD.")


def _datetime(value: Any, path: str) -> datetime:
    parsed: datetime | None = None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and "T" in value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None:
        _invalid(path, f"{path} must be an ISO 8601 date and time, e.g. 2026-11-21T09:30:00Z.")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        _invalid(path, f"{path} must state its UTC offset (…Z or …+01:00).")
    return parsed
