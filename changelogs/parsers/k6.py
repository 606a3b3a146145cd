"""k6 end-of-test summaries, in both JSON shapes k6 writes.

* ``k6 run --summary-export=file.json`` (legacy): ``metrics.<name>`` holds the statistics
  directly (``{"avg": .., "p(95)": .., "thresholds": {"p(95)<500": false}}``), and a threshold's
  boolean means **crossed** (``true`` = the threshold failed).
* ``handleSummary(data)`` writing ``JSON.stringify(data)``: ``metrics.<name>`` is
  ``{"type", "contains", "values": {..}, "thresholds": {"p(95)<500": {"ok": true}}}``, and
  ``ok: false`` means crossed.

Figures taken: requests = ``http_reqs.count``; failed requests = the ``passes`` of the
``http_req_failed`` rate metric. Careful, that is not a typo: a rate metric counts non-zero
samples as "passes", and ``http_req_failed`` records 1 for a failed request, so its "passes"
are the failures and its "fails" the successes. Error rate = failures / (failures + successes),
or the metric's own rate when counts are missing. Latency (ms) from ``http_req_duration``:
``med`` -> p50, ``p(90)``, ``p(95)``, ``p(99)``, ``avg``, ``max``; a percentile k6 was not asked
to summarise (``summaryTrendStats``) stays None even if a threshold uses it. Checks from the
``checks`` rate metric. Every threshold is listed with its metric (sub-metrics such as
``http_req_duration{name:accounts}`` included); verdict ``fail`` when any is crossed, which is
also when k6 exits 99.
"""

from changelogs.parsers._common import (
    JsonObject,
    as_bool,
    as_object,
    as_str,
    check_count,
    invalid,
    key_path,
    load_json_report,
    opt_int,
    opt_number,
)
from changelogs.parsers.summaries import LatencyMs, PerformanceSummary, Threshold

PARSER_VERSION = "k6/1"
FORMAT = "k6_summary"


def parse(data: bytes) -> PerformanceSummary:
    document = load_json_report(data, what="k6 summary", member="metrics", member_type=dict)
    metrics: JsonObject = document["metrics"]
    check_count(len(metrics), "metrics")
    handle_summary = any(
        isinstance(metric, dict) and isinstance(metric.get("values"), dict) for metric in metrics.values()
    )

    values: dict[str, tuple[JsonObject, str]] = {}
    thresholds: list[Threshold] = []
    for name, raw_metric in metrics.items():
        path = key_path("$.metrics", name)
        metric = as_object(raw_metric, path)
        if handle_summary:
            values_path = key_path(path, "values")
            values[name] = (as_object(metric.get("values", {}), values_path), values_path)
        else:
            values[name] = (
                {key: value for key, value in metric.items() if key != "thresholds"},
                path,
            )
        thresholds.extend(_thresholds(name, metric, path, handle_summary=handle_summary))
    thresholds.sort(key=lambda threshold: (threshold.metric, threshold.expression))

    requests = None
    if "http_reqs" in values:
        counter, counter_path = values["http_reqs"]
        requests = opt_int(counter, "count", counter_path)

    failed_requests, error_rate = _failures(values.get("http_req_failed"))
    checks_passed = checks_failed = None
    if "checks" in values:
        checks, checks_path = values["checks"]
        checks_passed = opt_int(checks, "passes", checks_path)
        checks_failed = opt_int(checks, "fails", checks_path)

    latency = LatencyMs()
    if "http_req_duration" in values:
        trend, trend_path = values["http_req_duration"]
        latency = LatencyMs(
            p50=opt_number(trend, "med", trend_path),
            p90=opt_number(trend, "p(90)", trend_path),
            p95=opt_number(trend, "p(95)", trend_path),
            p99=opt_number(trend, "p(99)", trend_path),
            avg=opt_number(trend, "avg", trend_path),
            max=opt_number(trend, "max", trend_path),
        )
    notes = []
    if requests is None:
        notes.append("The summary has no http_reqs metric (no HTTP requests were made).")
    return PerformanceSummary(
        format=FORMAT,
        parser_version=PARSER_VERSION,
        tool="k6",
        requests=requests,
        failed_requests=failed_requests,
        error_rate=error_rate,
        latency_ms=latency,
        checks_passed=checks_passed,
        checks_failed=checks_failed,
        thresholds=tuple(thresholds),
        notes=tuple(notes),
    )


def _failures(entry: tuple[JsonObject, str] | None) -> tuple[int | None, float | None]:
    if entry is None:
        return None, None
    rate_values, path = entry
    failed = opt_int(rate_values, "passes", path)  # non-zero samples = failed requests
    succeeded = opt_int(rate_values, "fails", path)
    if failed is not None and succeeded is not None:
        total = failed + succeeded
        return failed, (failed / total if total else 0.0)
    rate = opt_number(rate_values, "rate", path)
    if rate is None:
        rate = opt_number(rate_values, "value", path)
    if rate is not None and rate > 1:
        invalid(path, f"{path} has a rate above 1.")
    return failed, rate


def _thresholds(name: str, metric: JsonObject, path: str, *, handle_summary: bool) -> list[Threshold]:
    raw = metric.get("thresholds")
    if raw is None:
        return []
    thresholds_path = key_path(path, "thresholds")
    found = []
    for expression, outcome in as_object(raw, thresholds_path).items():
        outcome_path = key_path(thresholds_path, expression)
        if handle_summary:
            ok_path = key_path(outcome_path, "ok")
            crossed = not as_bool(as_object(outcome, outcome_path).get("ok"), ok_path)
        else:
            crossed = as_bool(outcome, outcome_path)
        found.append(Threshold(metric=name, expression=as_str(expression, thresholds_path), crossed=crossed))
    return found
