"""JMeter results: CSV JTL with a header row (JMeter's default ``jmeter.save.saveservice``
settings: ``timeStamp,elapsed,label,responseCode,...,success,...``).

Every data row is one sample. Requests = rows; failed = rows whose ``success`` is ``false``;
error rate = failed / rows. Latency (ms) from ``elapsed``: ``avg`` is the mean, ``max`` the
largest, and p50/p90/p95/p99 are **nearest-rank** percentiles: sort the values and take the
one at 1-based rank ``ceil(p/100 * n)``, with no interpolation (e.g. 20 samples: p95 is the
19th smallest). JMeter's own Aggregate Report and HTML dashboard use other estimators, so
their figures can differ slightly from these on small runs.

Every row counts, as in JMeter's Aggregate Report: if the test plan saves sub-results or
Transaction Controller parent samples, those rows are counted as well.

XML JTL and header-less CSV are refused with a message saying which JMeter property to set.
"""

import math
from array import array

from changelogs.parsers._common import (
    csv_rows,
    decode_text,
    fail,
    first_char,
    percentile_nearest_rank,
)
from changelogs.parsers.errors import ParseErrorCode
from changelogs.parsers.summaries import LatencyMs, PerformanceSummary

PARSER_VERSION = "jmeter/1"
FORMAT = "jmeter_jtl"

MAX_ROWS = 2_000_000


def parse(data: bytes) -> PerformanceSummary:
    text = decode_text(data)
    first = first_char(text)
    if first == "<":
        fail(
            ParseErrorCode.UNSUPPORTED_FORMAT,
            "XML JTL files are not supported; save results as CSV (jmeter.save.saveservice.output_format=csv).",
        )
    if first in ("{", "["):
        fail(ParseErrorCode.WRONG_FORMAT, "Expected a JMeter CSV JTL file but this is JSON.")
    rows = csv_rows(text, what="JMeter JTL", limit=MAX_ROWS + 1)
    _, header = next(rows)
    header = [column.strip() for column in header]
    if "elapsed" not in header or "success" not in header:
        fail(
            ParseErrorCode.WRONG_FORMAT,
            "This is not a JMeter CSV JTL with a header row: the first line must name the "
            "'elapsed' and 'success' columns (jmeter.save.saveservice.print_field_names=true).",
            "line 1",
        )
    elapsed_at = header.index("elapsed")
    success_at = header.index("success")
    elapsed = array("q")
    failed = 0
    for line, row in rows:
        if not row or row == [""]:
            continue
        if len(row) != len(header):
            fail(
                ParseErrorCode.MALFORMED_CSV,
                f"This row has {len(row)} fields but the header has {len(header)}.",
                f"line {line}",
            )
        elapsed.append(_elapsed(row[elapsed_at], line))
        success = row[success_at].strip().lower()
        if success == "false":
            failed += 1
        elif success != "true":
            fail(
                ParseErrorCode.INVALID_STRUCTURE,
                f"'success' must be true or false, not {row[success_at]!r}.",
                f"line {line}",
            )
    if not elapsed:
        fail(ParseErrorCode.INVALID_STRUCTURE, "The JTL file has a header but no samples.")
    ordered: list[float] = sorted(float(value) for value in elapsed)
    return PerformanceSummary(
        format=FORMAT,
        parser_version=PARSER_VERSION,
        tool="jmeter",
        requests=len(ordered),
        failed_requests=failed,
        error_rate=failed / len(ordered),
        latency_ms=LatencyMs(
            p50=percentile_nearest_rank(ordered, 50),
            p90=percentile_nearest_rank(ordered, 90),
            p95=percentile_nearest_rank(ordered, 95),
            p99=percentile_nearest_rank(ordered, 99),
            avg=math.fsum(ordered) / len(ordered),
            max=ordered[-1],
        ),
        notes=("Percentiles are nearest-rank over every sample row.",),
    )


def _elapsed(raw: str, line: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        fail(
            ParseErrorCode.INVALID_STRUCTURE,
            f"'elapsed' must be whole milliseconds, not {raw!r}.",
            f"line {line}",
        )
    if value < 0:
        fail(ParseErrorCode.INVALID_STRUCTURE, "'elapsed' must not be negative.", f"line {line}")
    if value >= 2**62:
        fail(ParseErrorCode.INVALID_STRUCTURE, "'elapsed' is out of range.", f"line {line}")
    return value
