"""Locust results: the ``--csv`` stats file and the ``--json``/``--json-file`` report.

``locust_csv`` is ``<prefix>_stats.csv`` (not ``_stats_history.csv``, ``_failures.csv`` or
``_exceptions.csv``, which are refused as the wrong file). Figures come from its
``Aggregated`` row: ``Request Count``, ``Failure Count``, ``50%``/``90%``/``95%``/``99%``,
``Average Response Time``, ``Max Response Time`` (the pre-1.0 headers ``# requests`` and
``# failures`` are understood too). Locust rewrites this file every couple of seconds while it
runs and not necessarily at shutdown, so it can trail the JSON report of the same run (the
real samples: 264 requests in the CSV, 319 in the JSON).

``locust_json`` is a list of per-endpoint entries (``num_requests``, ``num_failures``,
``total_response_time``, ``max_response_time``, ``response_times`` histogram...). They are
added up; the average is total response time over requests that have one
(``num_requests - num_none_requests``), and percentiles come from the merged
``response_times`` histogram with Locust's own rule (walk down from the slowest bucket until
no more than ``int(n * p)`` requests are left below it), so they match what Locust itself
reports for the same data. Keys of the histogram are Locust's rounded bucket values in ms.

Locust records no pass/fail thresholds, so the verdict is ``pass`` unless the policy's own
limits (p95, error rate) say otherwise later.
"""

import math
from typing import Any, TypeVar

from changelogs.parsers._common import (
    as_int,
    as_list,
    as_object,
    csv_rows,
    decode_text,
    fail,
    first_char,
    index_path,
    key_path,
    load_json,
    opt_int,
    opt_number,
)
from changelogs.parsers.errors import ParseErrorCode
from changelogs.parsers.summaries import LatencyMs, PerformanceSummary

PARSER_VERSION = "locust/1"
CSV_FORMAT = "locust_csv"
JSON_FORMAT = "locust_json"

_MAX_CSV_ROWS = 100_000
# Canonical column -> the header spellings Locust has used for it.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "type": ("Type", "Method"),
    "name": ("Name",),
    "requests": ("Request Count", "# requests", "# reqs"),
    "failures": ("Failure Count", "# failures", "# fails"),
    "median": ("Median Response Time", "Median response time"),
    "avg": ("Average Response Time", "Average response time"),
    "max": ("Max Response Time", "Max response time"),
    "p50": ("50%",),
    "p90": ("90%",),
    "p95": ("95%",),
    "p99": ("99%",),
}
_REQUIRED = ("name", "requests", "failures")


def parse_csv(data: bytes) -> PerformanceSummary:
    text = decode_text(data)
    if first_char(text) in ("{", "[", "<"):
        fail(ParseErrorCode.WRONG_FORMAT, "Expected Locust's stats CSV but this is JSON or XML.")
    rows = csv_rows(text, what="Locust stats CSV", limit=_MAX_CSV_ROWS)
    _, header = next(rows)
    header = [column.strip() for column in header]
    _refuse_other_locust_csv(header)
    columns = _column_positions(header)
    aggregated: list[tuple[int, list[str]]] = [
        (line, row)
        for line, row in rows
        if len(row) > columns["name"] and row[columns["name"]].strip() in ("Aggregated", "Total")
    ]
    if len(aggregated) != 1:
        fail(
            ParseErrorCode.INVALID_STRUCTURE,
            f"Locust's stats CSV must have exactly one 'Aggregated' row; this one has {len(aggregated)}.",
        )
    line, row = aggregated[0]
    if len(row) != len(header):
        fail(
            ParseErrorCode.MALFORMED_CSV,
            f"The Aggregated row has {len(row)} fields but the header has {len(header)}.",
            f"line {line}",
        )

    def cell(column: str) -> str | None:
        position = columns.get(column)
        return None if position is None else row[position].strip()

    requests = _csv_number(cell("requests"), "Request Count", line, int)
    failures = _csv_number(cell("failures"), "Failure Count", line, int)
    if requests is None or failures is None:
        fail(
            ParseErrorCode.INVALID_STRUCTURE,
            "The Aggregated row has no request or failure count.",
            f"line {line}",
        )
    if failures > requests:
        fail(
            ParseErrorCode.INVALID_STRUCTURE,
            "The Aggregated row has more failures than requests.",
            f"line {line}",
        )
    p50 = _csv_number(cell("p50"), "50%", line, float)
    return _summary(
        fmt=CSV_FORMAT,
        requests=requests,
        failures=failures,
        latency_ms=LatencyMs(
            p50=p50 if p50 is not None else _csv_number(cell("median"), "Median Response Time", line, float),
            p90=_csv_number(cell("p90"), "90%", line, float),
            p95=_csv_number(cell("p95"), "95%", line, float),
            p99=_csv_number(cell("p99"), "99%", line, float),
            avg=_csv_number(cell("avg"), "Average Response Time", line, float),
            max=_csv_number(cell("max"), "Max Response Time", line, float),
        ),
        notes=("Locust rewrites the stats CSV periodically while running; it may trail the final figures of the run.",),
    )


def _summary(
    *, fmt: str, requests: int, failures: int, latency_ms: LatencyMs, notes: tuple[str, ...]
) -> PerformanceSummary:
    """What both of Locust's reports (stats CSV and JSON) come to."""
    return PerformanceSummary(
        format=fmt,
        parser_version=PARSER_VERSION,
        tool="locust",
        requests=requests,
        failed_requests=failures,
        error_rate=failures / requests if requests else None,
        latency_ms=latency_ms,
        notes=notes,
    )


def locust_side_file(header: list[str]) -> str | None:
    """Which of Locust's other CSV files this header is (``*_stats_history.csv``,
    ``*_failures.csv``, ``*_exceptions.csv``), or None."""
    if "Timestamp" in header and "User Count" in header:
        return "stats history CSV (*_stats_history.csv)"
    if "Occurrences" in header and "Error" in header:
        return "failures CSV (*_failures.csv)"
    if header[:2] == ["Count", "Message"]:
        return "exceptions CSV (*_exceptions.csv)"
    return None


def _refuse_other_locust_csv(header: list[str]) -> None:
    side_file = locust_side_file(header)
    if side_file:
        fail(
            ParseErrorCode.WRONG_FORMAT,
            f"This is Locust's {side_file}, which has no latency percentiles; upload the *_stats.csv "
            "file of the same run (locust --csv PREFIX writes PREFIX_stats.csv).",
            "line 1",
        )


def _column_positions(header: list[str]) -> dict[str, int]:
    positions: dict[str, int] = {}
    for column, spellings in _COLUMNS.items():
        for spelling in spellings:
            if spelling in header:
                positions[column] = header.index(spelling)
                break
    missing = [_COLUMNS[column][0] for column in _REQUIRED if column not in positions]
    if missing:
        fail(
            ParseErrorCode.WRONG_FORMAT,
            f"This is not Locust's stats CSV: the header lacks {', '.join(missing)}.",
            "line 1",
        )
    return positions


# What a cell of each kind must hold, as the refusal says it: (what it must be, when out of range).
_CSV_NUMBERS: dict[type, tuple[str, str]] = {
    int: ("a whole number", "must not be negative."),
    float: ("a number", "must be a finite, non-negative number."),
}
_N = TypeVar("_N", int, float)


def _csv_number(raw: str | None, column: str, line: int, kind: type[_N]) -> _N | None:
    """A cell as a non-negative ``kind`` (int or float); empty and ``N/A`` are None."""
    if raw is None or raw in ("", "N/A"):
        return None
    what, out_of_range = _CSV_NUMBERS[kind]
    try:
        value = kind(raw)
    except ValueError:
        fail(ParseErrorCode.INVALID_STRUCTURE, f"{column} must be {what}, not {raw!r}.", f"line {line}")
    if not math.isfinite(value) or value < 0:
        fail(ParseErrorCode.INVALID_STRUCTURE, f"{column} {out_of_range}", f"line {line}")
    return value


def parse_json(data: bytes) -> PerformanceSummary:
    document = load_json(data, what="Locust JSON report")
    if not isinstance(document, list) or (document and not isinstance(document[0], dict)):
        fail(
            ParseErrorCode.WRONG_FORMAT,
            "This is not a Locust JSON report: expected a top-level array of request statistics.",
            "$",
        )
    entries = as_list(document, "$")
    requests = failures = timed = 0
    total_time = 0.0
    max_time: float | None = None
    histogram: dict[float, int] = {}
    for i, raw_entry in enumerate(entries):
        path = index_path("$", i)
        entry = as_object(raw_entry, path)
        entry_requests = as_int(entry.get("num_requests"), key_path(path, "num_requests"))
        entry_failures = as_int(entry.get("num_failures"), key_path(path, "num_failures"))
        none_requests = opt_int(entry, "num_none_requests", path) or 0
        if none_requests > entry_requests:
            fail(
                ParseErrorCode.INVALID_STRUCTURE,
                f"{path} has more num_none_requests than num_requests.",
                path,
            )
        requests += entry_requests
        failures += entry_failures
        timed += entry_requests - none_requests
        total_time += opt_number(entry, "total_response_time", path) or 0.0
        entry_max = opt_number(entry, "max_response_time", path)
        if entry_max is not None:
            max_time = entry_max if max_time is None else max(max_time, entry_max)
        _merge_histogram(histogram, entry.get("response_times"), key_path(path, "response_times"))
    if not entries:
        fail(
            ParseErrorCode.INVALID_STRUCTURE,
            "The Locust JSON report has no request statistics.",
            "$",
        )
    notes = []
    bucketed = sum(histogram.values())
    if histogram and bucketed != timed:
        notes.append(
            f"The response time histograms hold {bucketed} requests but the counters say {timed}; "
            "percentiles are taken over the histogram."
        )
    return _summary(
        fmt=JSON_FORMAT,
        requests=requests,
        failures=failures,
        latency_ms=LatencyMs(
            p50=locust_percentile(histogram, 0.50),
            p90=locust_percentile(histogram, 0.90),
            p95=locust_percentile(histogram, 0.95),
            p99=locust_percentile(histogram, 0.99),
            avg=total_time / timed if timed else None,
            max=max_time,
        ),
        notes=tuple(notes),
    )


def _merge_histogram(histogram: dict[float, int], raw: Any, path: str) -> None:
    if raw is None:
        return
    for bucket, count in as_object(raw, path).items():
        bucket_path = key_path(path, bucket)
        try:
            value = float(bucket)
        except ValueError:
            fail(
                ParseErrorCode.INVALID_STRUCTURE,
                f"{bucket_path}: bucket {bucket!r} is not a number.",
                bucket_path,
            )
        if not math.isfinite(value) or value < 0:
            fail(
                ParseErrorCode.INVALID_STRUCTURE,
                f"{bucket_path}: bucket must be a finite, non-negative number.",
                bucket_path,
            )
        histogram[value] = histogram.get(value, 0) + as_int(count, bucket_path)


def locust_percentile(histogram: dict[float, int], percent: float) -> float | None:
    """Locust's ``calculate_response_time_percentile`` over a merged histogram."""
    total = sum(histogram.values())
    if not total:
        return None
    allowed_below = int(total * percent)
    processed = 0
    for bucket in sorted(histogram, reverse=True):
        processed += histogram[bucket]
        if total - processed <= allowed_below:
            return bucket
    return min(histogram)  # pragma: no cover - the loop always returns by the last bucket
