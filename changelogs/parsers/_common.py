"""What every parser shares: limits, safe decoding of text, JSON, XML and CSV, shape checks.

Evidence comes from pipelines we do not control, so every reader here assumes hostile input:

* sizes are capped before any work (``MAX_FILE_BYTES``) and counts while parsing
  (``MAX_ITEMS`` test cases, results, components...; ``MAX_NESTING`` levels), never by trusting
  totals the file declares;
* text must be UTF-8 (a UTF-8 byte order mark is tolerated and dropped);
* XML is read only through defusedxml with DTDs forbidden outright, which also rules out
  entity expansion (billion laughs) and external entities or DTDs (XXE);
* JSON rejects NaN/Infinity, duplicate keys (two readers could disagree on which one wins),
  nesting deeper than ``MAX_NESTING`` and lone surrogate escapes (``"\\ud800"``: not text);
* errors carry a location: "line L, column C" (1-based) for text, XML and CSV, a JSON path for
  JSON shapes.
"""

import csv
import io
import json
import math
import re
from collections.abc import Collection, Iterator
from typing import Any, Literal, NoReturn
from xml.etree.ElementTree import Element, ParseError

# defusedxml ships neither stubs nor py.typed; its functions are typed Any here.
from defusedxml import DefusedXmlException  # type: ignore[import-untyped, unused-ignore]
from defusedxml import ElementTree as DefusedElementTree  # type: ignore[import-untyped, unused-ignore]

from changelogs.parsers.errors import EvidenceParseError, ParseErrorCode

MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_NESTING = 64
MAX_ITEMS = 100_000
MAX_XML_ELEMENTS = 1_000_000
MAX_JSON_VALUES = 5_000_000
# Objects are counted while the JSON is read, so a file of millions of tiny objects is stopped
# before it costs gigabytes of memory (a JSON object costs ~200 bytes as a Python dict).
MAX_JSON_OBJECTS = 1_000_000
MAX_MESSAGE_CHARS = 1_000
MAX_LABEL_CHARS = 500

_UTF8_BOM = b"\xef\xbb\xbf"
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CONTROL_ALL = re.compile(r"[\x00-\x1f\x7f]")
_XML_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_UTF8_NAMES = {"utf-8", "utf8", "us-ascii", "ascii"}
_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")

JsonObject = dict[str, Any]


def fail(code: ParseErrorCode, message: str, location: str | None = None) -> NoReturn:
    raise EvidenceParseError(code, message, location=location)


def line_column(line: int, column: int) -> str:
    return f"line {line}, column {column}"


# --- bytes and text ---------------------------------------------------------------------------


def check_size(data: bytes) -> None:
    if len(data) > MAX_FILE_BYTES:
        fail(
            ParseErrorCode.TOO_LARGE,
            f"The file is {len(data)} bytes; evidence files are limited to {MAX_FILE_BYTES} bytes.",
        )
    if not data.strip():
        fail(ParseErrorCode.EMPTY_FILE, "The file is empty.")


def decode_text(data: bytes) -> str:
    """The file as text: size-checked, UTF-8 (strict), without a leading byte order mark."""
    check_size(data)
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        fail(
            ParseErrorCode.NOT_UTF8,
            f"The file is not UTF-8 text (byte 0x{data[exc.start]:02x} cannot start or continue "
            "a UTF-8 character); export it as UTF-8.",
            line_column(line, column),
        )
    if not text.strip():
        fail(ParseErrorCode.EMPTY_FILE, "The file contains only white space.")
    return text


def first_char(text: str) -> str:
    stripped = text.lstrip()
    return stripped[:1]


def clean_message(text: str | None) -> str | None:
    """Tool output fit for a summary: no ANSI colours or control characters, bounded length."""
    if text is None:
        return None
    cleaned = _CONTROL.sub("", _ANSI_ESCAPE.sub("", text)).strip()
    if not cleaned:
        return None
    if len(cleaned) > MAX_MESSAGE_CHARS:
        cleaned = cleaned[: MAX_MESSAGE_CHARS - 1].rstrip() + "…"
    return cleaned


def bounded_label(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    """A name from the file (test, suite, rule, location...): no control characters, bounded."""
    cleaned = _CONTROL_ALL.sub("", _ANSI_ESCAPE.sub("", text))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def check_count(count: int, what: str, limit: int = MAX_ITEMS) -> None:
    if count > limit:
        fail(
            ParseErrorCode.TOO_MANY_ITEMS,
            f"The file has more than {limit} {what}; split it or summarise it before uploading.",
        )


# --- XML --------------------------------------------------------------------------------------


def load_xml(data: bytes, *, what: str, item_tag: str | None = None, item_label: str = "items") -> Element:
    """Parse XML safely (defusedxml, no DTD at all) and return the root element.

    Elements named ``item_tag`` (any namespace) are counted while parsing and refused beyond
    MAX_ITEMS, so an oversized report is stopped before its whole tree is in memory.
    """
    text = decode_text(data)
    first = first_char(text)
    if first in ("{", "["):
        fail(ParseErrorCode.WRONG_FORMAT, f"Expected an XML {what} file but this is JSON.")
    if first != "<":
        fail(ParseErrorCode.WRONG_FORMAT, f"Expected an XML {what} file but this is not XML.")
    declared = _XML_DECLARED_ENCODING.match(data.removeprefix(_UTF8_BOM))
    if declared and declared.group(1).decode("ascii").lower() not in _UTF8_NAMES:
        fail(
            ParseErrorCode.NOT_UTF8,
            f"The XML declares encoding {declared.group(1).decode('ascii')!r}; only UTF-8 is accepted.",
            line_column(1, declared.start(1) + 1),
        )
    depth = 0
    elements = 0
    items = 0
    events = DefusedElementTree.iterparse(
        io.BytesIO(data),
        events=("start", "end"),
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    try:
        for event, element in events:
            if event == "start":
                depth += 1
                elements += 1
                if depth > MAX_NESTING:
                    fail(
                        ParseErrorCode.TOO_DEEP,
                        f"The XML nests elements more than {MAX_NESTING} levels deep.",
                    )
                check_count(elements, "XML elements", MAX_XML_ELEMENTS)
                if item_tag is not None and local_name(element) == item_tag:
                    items += 1
                    check_count(items, item_label)
            else:
                depth -= 1
    except DefusedXmlException as exc:
        fail(
            ParseErrorCode.FORBIDDEN_XML_CONSTRUCT,
            "The XML contains a DTD, an entity declaration or an external reference "
            f"({type(exc).__name__}); these are refused because they enable entity expansion "
            "and external entity (XXE) attacks.",
        )
    except ParseError as exc:
        line, column = exc.position
        reason = str(exc).split(":", 1)[0]
        fail(
            ParseErrorCode.MALFORMED_XML,
            f"The XML is not well-formed ({reason}); the file may be truncated or corrupted.",
            line_column(line, column + 1),
        )
    root = events.root
    if not isinstance(root, Element):  # pragma: no cover - iterparse always sets it
        fail(ParseErrorCode.MALFORMED_XML, "The XML has no root element.")
    return root


def local_name(element: Element) -> str:
    """The tag without its namespace: ``{urn:x}testsuite`` -> ``testsuite``."""
    tag = element.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


# --- JSON -------------------------------------------------------------------------------------


class _DuplicateKeyError(ValueError):
    pass


class _TooManyObjectsError(ValueError):
    pass


class _ObjectBuilder:
    """``object_pairs_hook`` that refuses duplicate keys and counts objects as they are built."""

    def __init__(self) -> None:
        self.objects = 0

    def __call__(self, pairs: list[tuple[str, Any]]) -> JsonObject:
        self.objects += 1
        if self.objects > MAX_JSON_OBJECTS:
            raise _TooManyObjectsError
        result: JsonObject = {}
        for key, value in pairs:
            if key in result:
                raise _DuplicateKeyError(key)
            result[key] = value
        return result


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def load_json_text(text: str, *, what: str, location_prefix: str = "") -> Any:
    first = first_char(text)
    if first == "<":
        fail(ParseErrorCode.WRONG_FORMAT, f"Expected a JSON {what} file but this is XML.")
    try:
        value = json.loads(text, object_pairs_hook=_ObjectBuilder(), parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        fail(
            ParseErrorCode.MALFORMED_JSON,
            f"The JSON is not valid ({exc.msg}); the file may be truncated or corrupted.",
            location_prefix + line_column(exc.lineno, exc.colno),
        )
    except _TooManyObjectsError:
        check_count(MAX_JSON_OBJECTS + 1, "JSON objects", MAX_JSON_OBJECTS)
    except _DuplicateKeyError as exc:
        fail(
            ParseErrorCode.MALFORMED_JSON,
            f"The JSON repeats the key {exc.args[0]!r} in one object; readers could disagree on "
            "which value counts, so it is refused.",
            location_prefix or None,
        )
    except RecursionError:
        fail(ParseErrorCode.TOO_DEEP, f"The JSON nests more than {MAX_NESTING} levels deep.")
    except ValueError as exc:  # NaN/Infinity, integers beyond Python's digit limit
        fail(
            ParseErrorCode.MALFORMED_JSON,
            f"The JSON is not valid ({exc}).",
            location_prefix or None,
        )
    check_json_limits(value)
    return value


def load_json(data: bytes, *, what: str) -> Any:
    return load_json_text(decode_text(data), what=what)


def load_json_report(data: bytes, *, what: str, member: str, member_type: type[dict[str, Any] | list[Any]]) -> Any:
    """A JSON report recognised by one top-level member: refused as the wrong format without it."""
    document = load_json(data, what=what)
    if not isinstance(document, dict) or not isinstance(document.get(member), member_type):
        shape = "object" if member_type is dict else "array"
        fail(ParseErrorCode.WRONG_FORMAT, f"This is not a {what}: it has no top-level '{member}' {shape}.", "$")
    return document


def check_json_limits(value: Any) -> None:
    """Refuse documents nested deeper than MAX_NESTING, with absurdly many values, or with a
    string or key that is not text (a lone surrogate)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 1
    _require_text(value, "$")
    while stack:
        node, depth = stack.pop()
        children: Any = node.values() if isinstance(node, dict) else node
        if depth > MAX_NESTING:
            fail(ParseErrorCode.TOO_DEEP, f"The document nests more than {MAX_NESTING} levels deep.")
        seen += len(children)
        check_count(seen, "JSON values", MAX_JSON_VALUES)
        for child in (*node, *children) if isinstance(node, dict) else children:
            if isinstance(child, str):
                _require_text(child, None, value)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def _require_text(text: Any, path: str | None, document: Any = None) -> None:
    if not isinstance(text, str) or text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        fail(
            ParseErrorCode.LONE_SURROGATE,
            f"The document escapes half a character ({text[exc.start]!a} without its pair), which is not "
            "text; the tool that wrote it mangled a string.",
            path or _path_to(document, text),
        )


def _path_to(document: Any, text: str) -> str | None:
    """Where ``text`` is in ``document`` (only looked for once a bad string was found)."""
    stack: list[tuple[Any, str]] = [(document, "$")]
    while stack:
        node, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            child_path = key_path(path, key) if isinstance(key, str) else index_path(path, key)
            if child is text or key is text:
                return child_path
            stack.append((child, child_path))
    return None


# --- JSON shapes ------------------------------------------------------------------------------


def key_path(path: str, key: str) -> str:
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def index_path(path: str, index: int) -> str:
    return f"{path}[{index}]"


def invalid(path: str, message: str) -> NoReturn:
    fail(ParseErrorCode.INVALID_STRUCTURE, message, path)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def as_object(value: Any, path: str) -> JsonObject:
    if not isinstance(value, dict):
        invalid(path, f"{path} must be an object, not {_type_name(value)}.")
    return value


def as_list(value: Any, path: str, *, limit: int = MAX_ITEMS) -> list[Any]:
    if not isinstance(value, list):
        invalid(path, f"{path} must be an array, not {_type_name(value)}.")
    check_count(len(value), f"entries in {path}", limit)
    return value


def as_str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        invalid(path, f"{path} must be a string, not {_type_name(value)}.")
    return value


def as_int(value: Any, path: str) -> int:
    """A non-negative integer (JSON 3.0 counts as 3; booleans never count as numbers)."""
    number: int
    if isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        invalid(path, f"{path} must be a whole number, not {_type_name(value)}.")
    if number < 0:
        invalid(path, f"{path} must not be negative.")
    return number


def as_number(value: Any, path: str, *, minimum: float | None = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        invalid(path, f"{path} must be a number, not {_type_name(value)}.")
    number = float(value)
    if not math.isfinite(number):  # pragma: no cover - the JSON reader refuses NaN/Infinity
        invalid(path, f"{path} must be a finite number.")
    if minimum is not None and number < minimum:
        invalid(path, f"{path} must not be below {minimum:g}.")
    return number


def as_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        invalid(path, f"{path} must be true or false, not {_type_name(value)}.")
    return value


def one_of(value: str, allowed: Collection[str], path: str) -> str:
    """``value`` when it is one of ``allowed``; the refusal lists them in the order given."""
    if value not in allowed:
        invalid(path, f"{path} is {value!r}; expected one of {', '.join(allowed)}.")
    return value


def opt_str(obj: JsonObject, key: str, path: str) -> str | None:
    value = obj.get(key)
    return None if value is None else as_str(value, key_path(path, key))


def opt_object(obj: JsonObject, key: str, path: str) -> JsonObject:
    value = obj.get(key)
    return {} if value is None else as_object(value, key_path(path, key))


def opt_list(obj: JsonObject, key: str, path: str, *, limit: int = MAX_ITEMS) -> list[Any]:
    value = obj.get(key)
    return [] if value is None else as_list(value, key_path(path, key), limit=limit)


def opt_int(obj: JsonObject, key: str, path: str) -> int | None:
    value = obj.get(key)
    return None if value is None else as_int(value, key_path(path, key))


def opt_number(obj: JsonObject, key: str, path: str) -> float | None:
    value = obj.get(key)
    return None if value is None else as_number(value, key_path(path, key))


def str_list(value: Any, path: str) -> tuple[str, ...]:
    return tuple(as_str(item, index_path(path, i)) for i, item in enumerate(as_list(value, path)))


# --- CSV --------------------------------------------------------------------------------------


def csv_rows(text: str, *, what: str, limit: int) -> Iterator[tuple[int, list[str]]]:
    """Rows of a CSV file with the line each starts on; a CSV syntax error names the line."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = 0
    line = 1
    try:
        for row in reader:
            rows += 1
            check_count(rows, f"rows in the {what}", limit)
            yield line, row
            line = reader.line_num + 1
    except csv.Error as exc:
        fail(
            ParseErrorCode.MALFORMED_CSV,
            f"The {what} is not valid CSV ({exc}); the file may be truncated or corrupted.",
            f"line {reader.line_num}",
        )


def percentile_nearest_rank(sorted_values: list[float], percent: int) -> float | None:
    """Nearest-rank percentile of ascending values: the value at 1-based rank
    ``ceil(percent / 100 * n)``, i.e. the smallest value with at least ``percent`` % of all
    values at or below it. No interpolation; integer arithmetic, so no float rounding."""
    if not sorted_values:
        return None
    rank = max(1, -(-(percent * len(sorted_values)) // 100))
    return sorted_values[rank - 1]


def cvss_rating(score: float) -> Literal["critical", "high", "medium", "low"] | None:
    """The qualitative rating of a CVSS score (CVSS v3.1 specification, section 5); None for a
    score of 0, which each format names itself (SARIF's "note", CycloneDX's "none")."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    if score > 0:
        return "low"
    return None
