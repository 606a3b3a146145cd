"""Performance evidence: k6 (both summary shapes), Locust (CSV and JSON), JMeter (crafted JTL).

The k6 and Locust figures were read off the sample files by hand; the Locust JSON percentiles
were worked out by hand from the merged response-time histogram (see the test).
"""

import json
from typing import Any

import pytest

from changelogs.parsers import EvidenceParseError, PerformanceSummary, parse
from tests.shared_data import SAMPLES_DIR

PERF_DIR = SAMPLES_DIR / "perf"


def _perf(fmt: str, data: bytes) -> PerformanceSummary:
    summary = parse(fmt, data)
    assert isinstance(summary, PerformanceSummary)
    return summary


# --- k6 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["k6-summary-export.json", "k6-handlesummary.json"])
def test_it_reads_both_k6_summary_shapes_of_the_same_run_alike(name: str) -> None:
    summary = _perf("k6_summary", (PERF_DIR / name).read_bytes())

    assert summary.tool == "k6"
    assert summary.requests == 720
    # http_req_failed counts failed requests as "passes" (240) and good ones as "fails" (480).
    assert summary.failed_requests == 240
    assert summary.error_rate == pytest.approx(1 / 3)
    assert summary.latency_ms.p50 == pytest.approx(1.2631455)
    assert summary.latency_ms.p90 == pytest.approx(2.711725)
    assert summary.latency_ms.p95 == pytest.approx(3.1867915)
    assert summary.latency_ms.p99 is None  # a threshold uses p(99) but the summary does not record it
    assert summary.latency_ms.avg == pytest.approx(1.467132029)
    assert summary.latency_ms.max == pytest.approx(5.748296)
    assert (summary.checks_passed, summary.checks_failed) == (480, 0)
    assert [(t.metric, t.expression, t.crossed) for t in summary.thresholds] == [
        ("checks", "rate>0.9", False),
        ("http_req_duration", "p(95)<500", False),
        ("http_req_duration", "p(99)<1000", False),
        ("http_req_duration{name:accounts}", "p(95)<300", False),
        ("http_req_failed", "rate<0.05", True),
    ]
    assert summary.verdict == "fail"  # k6 exited 99 for the same reason


def test_its_k6_summary_is_plain_rounded_json() -> None:
    data = _perf("k6_summary", (PERF_DIR / "k6-summary-export.json").read_bytes()).to_dict()

    assert json.loads(json.dumps(data)) == data
    assert data["kind"] == "performance"
    assert data["error_rate"] == 0.333333
    assert data["latency_ms"] == {"p50": 1.263, "p90": 2.712, "p95": 3.187, "p99": None, "avg": 1.467, "max": 5.748}
    assert data["thresholds"][-1] == {"metric": "http_req_failed", "expression": "rate<0.05", "crossed": True}


def test_a_k6_run_whose_thresholds_all_hold_passes() -> None:
    document = json.loads((PERF_DIR / "k6-handlesummary.json").read_text(encoding="utf-8"))
    document["metrics"]["http_req_failed"]["thresholds"]["rate<0.05"]["ok"] = True

    assert _perf("k6_summary", json.dumps(document).encode()).verdict == "pass"


def test_a_k6_run_without_http_requests_has_no_request_figures() -> None:
    document = {"metrics": {"iterations": {"count": 10, "rate": 2.0}}, "root_group": {}}

    summary = _perf("k6_summary", json.dumps(document).encode())

    assert (summary.requests, summary.failed_requests, summary.error_rate) == (None, None, None)
    assert summary.notes == ("The summary has no http_reqs metric (no HTTP requests were made).",)


def test_a_k6_threshold_that_is_not_a_boolean_is_refused_with_its_path() -> None:
    document = {"metrics": {"http_reqs": {"count": 1, "thresholds": {"count>0": "yes"}}}}

    with pytest.raises(EvidenceParseError) as caught:
        parse("k6_summary", json.dumps(document).encode())

    assert caught.value.code == "invalid_structure"
    assert caught.value.location == '$.metrics.http_reqs.thresholds["count>0"]'


# --- Locust -----------------------------------------------------------------------------------


def test_it_takes_the_aggregated_row_of_the_locust_stats_csv() -> None:
    summary = _perf("locust_csv", (PERF_DIR / "locust_stats.csv").read_bytes())

    # ",Aggregated,264,32,...,50%=1,...,90%=2,95%=2,98%=5,99%=23,..."
    assert (summary.tool, summary.requests, summary.failed_requests) == ("locust", 264, 32)
    assert summary.error_rate == pytest.approx(32 / 264)
    latency = summary.latency_ms
    assert (latency.p50, latency.p90, latency.p95, latency.p99) == (1.0, 2.0, 2.0, 23.0)
    assert latency.avg == pytest.approx(1.9486359659130026)
    assert latency.max == pytest.approx(28.630299000042214)
    assert summary.thresholds == ()
    assert summary.verdict == "pass"  # Locust records no thresholds; the policy applies its own


def test_it_adds_up_the_locust_json_entries_and_computes_percentiles_from_the_histograms() -> None:
    summary = _perf("locust_json", (PERF_DIR / "locust-stats.json").read_bytes())

    # 173 + 108 + 38 requests; only /api/statements failed (38 times). The CSV of the same run
    # says 264: it was last written before the run ended.
    assert (summary.requests, summary.failed_requests) == (319, 38)
    assert summary.error_rate == pytest.approx(38 / 319)
    # Merged histogram (ms: count): 1: 186, 2: 120, 3: 6, 4: 1, 5: 1, 22: 2, 23: 2, 29: 1.
    # p95: walking down from 29 ms, 306 requests are still below 3 ms but only 186 below 2 ms,
    # and int(319 * 0.95) = 303 -> 2 ms. p99: int(315.81) = 315, 314 are below 22 ms -> 22 ms.
    latency = summary.latency_ms
    assert (latency.p50, latency.p90, latency.p95, latency.p99) == (1.0, 2.0, 2.0, 22.0)
    # (330.41664 + 187.170534 + 80.030961) ms / 319 requests
    assert latency.avg == pytest.approx(597.618135 / 319)
    assert latency.max == pytest.approx(28.630299000042214)
    assert summary.notes == ()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("locust_stats_history.csv", "stats history CSV"),
        ("locust_failures.csv", "failures CSV"),
        ("locust_exceptions.csv", "exceptions CSV"),
    ],
)
def test_the_other_locust_csv_files_are_refused_as_the_wrong_file(name: str, message: str) -> None:
    with pytest.raises(EvidenceParseError) as caught:
        parse("locust_csv", (PERF_DIR / name).read_bytes())

    assert caught.value.code == "wrong_format"
    assert message in caught.value.message


def test_a_locust_csv_without_an_aggregated_row_is_refused() -> None:
    text = (PERF_DIR / "locust_stats.csv").read_text(encoding="utf-8")
    without_total = "\n".join(line for line in text.splitlines() if ",Aggregated," not in line)

    with pytest.raises(EvidenceParseError) as caught:
        parse("locust_csv", without_total.encode())

    assert caught.value.code == "invalid_structure"


def test_a_locust_json_entry_with_a_negative_count_is_refused_with_its_path() -> None:
    entries: list[dict[str, Any]] = json.loads((PERF_DIR / "locust-stats.json").read_text(encoding="utf-8"))
    entries[2]["num_failures"] = -1

    with pytest.raises(EvidenceParseError) as caught:
        parse("locust_json", json.dumps(entries).encode())

    assert (caught.value.code, caught.value.location) == ("invalid_structure", "$[2].num_failures")


# --- JMeter -----------------------------------------------------------------------------------

JTL_HEADER = (
    "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,"
    "failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect"
)
# (elapsed ms, success) for 20 samples, written in the order JMeter finished them.
JTL_SAMPLES = [
    (120, "true"), (95, "true"), (310, "true"), (101, "true"), (88, "true"),
    (450, "false"), (130, "true"), (99, "true"), (105, "true"), (2000, "false"),
    (97, "FALSE"), (115, "true"), (140, "true"), (90, "true"), (102, "true"),
    (98, "true"), (125, "true"), (110, "true"), (300, "true"), (93, "true"),
]  # fmt: skip


def _jtl(samples: list[tuple[int, str]] = JTL_SAMPLES) -> bytes:
    lines = [JTL_HEADER]
    for i, (elapsed, success) in enumerate(samples):
        message = '"Not Found, try later"' if success.lower() == "false" else "OK"
        code = "404" if success.lower() == "false" else "200"
        lines.append(
            f"{1795759494000 + i},{elapsed},GET /api/accounts,{code},{message},Thread Group 1-1,text,"
            f"{success},,512,120,5,5,http://127.0.0.1:8765/api/accounts,{elapsed - 2},0,1"
        )
    return ("\r\n".join(lines) + "\r\n").encode()


def test_it_computes_jmeter_figures_from_the_rows() -> None:
    summary = _perf("jmeter_jtl", _jtl())

    # Sorted: 88 90 93 95 97 98 99 101 102 105 | 110 115 120 125 130 140 300 310 450 2000.
    # Nearest rank: p50 = 10th = 105, p90 = 18th = 310, p95 = ceil(19.0) = 19th = 450,
    # p99 = ceil(19.8) = 20th = 2000. Sum 4768 -> avg 238.4. 3 of 20 failed -> 0.15.
    assert (summary.tool, summary.requests, summary.failed_requests) == ("jmeter", 20, 3)
    assert summary.error_rate == 0.15
    latency = summary.latency_ms
    assert (latency.p50, latency.p90, latency.p95, latency.p99) == (105.0, 310.0, 450.0, 2000.0)
    assert (latency.avg, latency.max) == (238.4, 2000.0)
    assert summary.verdict == "pass"


def test_a_single_jmeter_sample_is_every_percentile() -> None:
    latency = _perf("jmeter_jtl", _jtl([(42, "true")])).latency_ms

    assert (latency.p50, latency.p95, latency.p99, latency.max) == (42.0, 42.0, 42.0, 42.0)


@pytest.mark.parametrize(
    ("data", "code", "location"),
    [
        (_jtl().split(b"\r\n", 1)[1], "wrong_format", "line 1"),  # no header row
        (
            b'<?xml version="1.0"?>\n<testResults version="1.2"><httpSample t="5" s="true"/></testResults>',
            "unsupported_format",
            None,
        ),
        (_jtl([(10, "true"), (12, "maybe")]), "invalid_structure", "line 3"),
        (_jtl([(10, "true"), (-5, "true")]), "invalid_structure", "line 3"),
        (_jtl() + b"1795759494999,12,GET /x,200\r\n", "malformed_csv", "line 22"),
        (JTL_HEADER.encode() + b"\n", "invalid_structure", None),
    ],
)
def test_it_refuses_jtl_files_it_cannot_trust(data: bytes, code: str, location: str | None) -> None:
    with pytest.raises(EvidenceParseError) as caught:
        parse("jmeter_jtl", data)

    assert (caught.value.code, caught.value.location) == (code, location)
