"""Where the open loop's tail comes from (a benchmark, not a test): bench/gate.py's open loop
with every request traced.

    .venv/bin/python bench/gate_tail.py [--rounds 10] [--seconds 10] [--rate R] [--dump tail.json]

Builds bench/gate.py's small history (``--large``: and its large one) in a scratch database,
serves it as bench/gate.py does (gunicorn, its workers and settings) with bench/trace.py's
middleware, and runs the paced client of bench/gate.py on the trivial endpoint and the gate
check alternately, ``--rounds`` times, at ``--rate`` (default: half the trivial endpoint's
median throughput over three closed-loop rounds of wrk, as bench/gate.py sets it), after
``--closed-loop-rounds`` rounds of bench/gate.py's closed loop (none by default). Each
request's time from when it was due to its answer is split into:

- **client late**: due to sent (the paced client's own delay: its threads share the cores);
- **to Django**: sent to the middleware (connecting, the listen queue while every worker is
  busy, gunicorn reading the request);
- **Django**: in the chain of middleware and view, of which the SQL statements (each timed by
  itself: for the gate its read and its write, whose time includes the commit's WAL flush) and
  the garbage collector;
- **back**: the answer leaving the middleware to the client having read it.

While the rounds run, a sampler polls ``pg_stat_activity`` for what the scratch database's
backends and the WAL writer wait on; ``pg_stat_wal`` is read before and after each round
(cluster-wide: other databases' WAL counts too). Per round: p50, p99, p99.9 and max, and the
split of its slowest 1 %; then both endpoints' histograms over all rounds, the p99 ratio as
bench/gate.py takes it (median of the rounds' p99s) and over all the rounds' requests pooled.
"""

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
    sys.path.insert(0, str(ROOT))

from bench import gate as bench  # noqa: E402 (after the path is set)
from bench.support import database_create, database_drop, percentile  # noqa: E402

BUCKETS = (2, 5, 10, 20, 50, 100, 200, 500, 1000, float("inf"))


class WaitSampler(threading.Thread):
    """Every ``interval`` seconds, what the scratch database's active backends and the WAL
    writer are waiting on (or "CPU" when active and waiting on nothing)."""

    def __init__(self, url: str, database: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.url, self.database, self.interval = url, database, interval
        self.samples: list[tuple[float, list[str]]] = []
        self.running = threading.Event()
        self.stopped = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stopped.is_set():
                if self.running.is_set():
                    rows = conn.execute(
                        "SELECT backend_type, coalesce(wait_event_type || ':' || wait_event, 'CPU')"
                        " FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND ((datname = %s AND state = 'active')"
                        " OR backend_type = 'walwriter')",
                        [self.database],
                    ).fetchall()
                    at = time.monotonic()
                    self.samples.append(
                        (at, [("walwriter " if kind == "walwriter" else "") + wait for kind, wait in rows])
                    )
                time.sleep(self.interval)


def wal_stats(url: str) -> dict[str, float]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT wal_records, wal_bytes, wal_write, wal_sync, wal_sync_time FROM pg_stat_wal"
        ).fetchone()
    return dict(zip(("records", "bytes", "writes", "syncs", "sync_ms"), map(float, row), strict=True))


def split(record: tuple[float, float, float, str]) -> dict[str, Any]:
    due, sent, done, trace = record
    started, ended, gc_ms, collections, pid, statements = trace.split(" ", 5)
    sql = [float(ms) for ms in statements.split(",") if ms]
    return {
        "total": (done - due) * 1000,
        "late": (sent - due) * 1000,
        "to_django": (float(started) - sent) * 1000,
        "django": (float(ended) - float(started)) * 1000,
        "sql": sql,
        "gc": float(gc_ms),
        "collections": int(collections),
        "back": (done - float(ended)) * 1000,
        "pid": int(pid),
        "due": due,
    }


def tail_split(requests: list[dict[str, Any]]) -> dict[str, float]:
    """The mean split of the slowest 1 % of the requests."""
    slowest = sorted(requests, key=lambda r: r["total"])[-max(1, len(requests) // 100) :]
    statements = max(len(r["sql"]) for r in slowest)
    keys = ("total", "late", "to_django", "django", "gc", "back")
    out = {key: statistics.mean(r[key] for r in slowest) for key in keys}
    for number in range(statements):
        out[f"sql{number + 1}"] = statistics.mean(r["sql"][number] if number < len(r["sql"]) else 0 for r in slowest)
    return out


def waits_during(samples: list[tuple[float, list[str]]], windows: list[tuple[float, float]]) -> Counter[str]:
    counted: Counter[str] = Counter()
    for at, waits in samples:
        if any(lo <= at <= hi for lo, hi in windows):
            counted.update(waits)
    return counted


def main() -> None:  # noqa: PLR0915 - one investigation, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/releasegate_bench_tail")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, help="requests/s (default: half the trivial endpoint's throughput)")
    parser.add_argument("--workers", type=int, default=bench.WORKERS)
    parser.add_argument(
        "--closed-loop-rounds",
        type=int,
        default=0,
        help="before the open loop, this many rounds of bench/gate.py's closed loop (wrk, each endpoint for --seconds)",
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="trace bench/gate.py's large history (its defaults: 100,000 changelogs, 1,000,000 audit events)",
    )
    parser.add_argument("--sample-ms", type=float, default=10.0, help="pg_stat_activity sampling interval")
    parser.add_argument("--dump", type=Path, help="write every request's split here (JSON)")
    parser.add_argument("--tree", type=Path, default=ROOT, help="serve this checkout's code (bench/ from this one)")
    args = parser.parse_args()

    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    var = Path(tempfile.mkdtemp(prefix="releasegate-bench-tail-"))
    database_create(args.database_url)
    try:
        environment = {**bench.server_environment(args.database_url, var), "BENCH_GATE_TRACE": "1"}
        bench.django_setup(environment)
        from django.db import connection

        # The scratch database's backends time their WAL writes and flushes (pg_stat_wal's sync_ms).
        name = bench.urlsplit(args.database_url).path.lstrip("/")
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {name} SET track_wal_io_timing = on")
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0)
        setup = bench.history_build()
        if args.large:
            bench.large_history_load(bench.LARGE_CHANGELOGS, bench.LARGE_EVENTS, setup["pipeline"], log)
        connections.close_all()
        admin_url = args.database_url.replace("postgres://", "postgresql://", 1)
        sampler = WaitSampler(admin_url, setup["database"], args.sample_ms / 1000)
        sampler.start()
        scripts = {endpoint: bench.wrk_script(var, endpoint, setup) for endpoint in bench.ENDPOINTS}
        with bench.server(environment, args.workers, args.tree) as base:
            for endpoint in bench.ENDPOINTS:
                bench.wrk_run(bench.target(base, endpoint, setup)[0], scripts[endpoint], 3)
            rate = args.rate
            if rate is None:
                url = bench.target(base, "trivial", setup)[0]
                rate = bench.OPEN_RATE_SHARE * statistics.median(
                    bench.wrk_run(url, scripts["trivial"], 5)["rps"] for _ in range(3)
                )
            for number in range(args.closed_loop_rounds):
                for endpoint in bench.ENDPOINTS:
                    figures = bench.wrk_run(bench.target(base, endpoint, setup)[0], scripts[endpoint], args.seconds)
                    log(f"closed loop {number + 1} {endpoint}: {figures['rps']:.0f} req/s, p99 {figures['p99']:.1f} ms")
            log(f"open loop at {rate:.0f} req/s, {args.rounds} rounds of {args.seconds:g} s, {args.workers} workers")
            rounds: list[dict[str, Any]] = []
            port = int(base.rsplit(":", 1)[1])
            for number in range(args.rounds):
                for endpoint in bench.ENDPOINTS if number % 2 == 0 else bench.ENDPOINTS[::-1]:
                    records: list[tuple[float, float, float, str]] = []
                    wal_before, procs = wal_stats(admin_url), bench.processes(port, setup["database"])
                    machine = bench.machine_seconds()
                    sampler.samples = []
                    sampler.running.set()
                    figures = bench.paced_run(base, endpoint, setup, rate=rate, seconds=args.seconds, records=records)
                    sampler.running.clear()
                    used = bench.cpu_used(procs, bench.processes(port, setup["database"]))
                    total, busy = (e - s for e, s in zip(bench.machine_seconds(), machine, strict=True))
                    wal_after = wal_stats(admin_url)
                    requests = [split(record) for record in records]
                    ordered = sorted(r["total"] for r in requests)
                    slow = percentile(ordered, 0.99)
                    windows = [(r["due"], r["due"] + r["total"] / 1000) for r in requests if r["total"] >= slow]
                    wal = {key: wal_after[key] - wal_before[key] for key in wal_before}
                    entry = {
                        "round": number + 1,
                        "endpoint": endpoint,
                        "rps": figures["rps"],
                        "p50": percentile(ordered, 0.5),
                        "p99": slow,
                        "p999": percentile(ordered, 0.999),
                        "max": ordered[-1],
                        "tail": tail_split(requests),
                        "gc_share": sum(r["collections"] > 0 for r in requests) / len(requests),
                        "waits": dict(waits_during(sampler.samples, [(0, float("inf"))]).most_common(8)),
                        "waits_tail": dict(waits_during(sampler.samples, windows).most_common(8)),
                        "wal": wal,
                        "others": max(0.0, busy - used["app"] - used["db"]) / total,
                        "requests": requests,
                    }
                    rounds.append(entry)
                    t = entry["tail"]
                    sql = " + ".join(f"{t[k]:.1f}" for k in sorted(t) if k.startswith("sql"))
                    log(
                        f"round {number + 1} {endpoint:<7} p50 {entry['p50']:5.1f}  p99 {slow:6.1f}  p99.9 "
                        f"{entry['p999']:6.1f}  max {entry['max']:6.1f} ms | slowest 1%: late {t['late']:.1f}, "
                        f"to Django {t['to_django']:.1f}, Django {t['django']:.1f} (SQL {sql}, GC {t['gc']:.1f}), "
                        f"back {t['back']:.1f} | WAL syncs {wal['syncs']:.0f} ({wal['sync_ms']:.0f} ms), "
                        f"others {entry['others']:.0%} (client+others)"
                    )
                    log(f"    waits all: {entry['waits']}")
                    log(f"    waits during the slowest 1%: {entry['waits_tail']}")
        sampler.stopped.set()
    finally:
        from django.db import connections

        connections.close_all()
        database_drop(args.database_url)

    print("\nHistograms over all rounds (requests per latency bucket, ms):")
    header = " ".join(f"{'≤' + format(b, 'g') if b != float('inf') else '>1000':>7}" for b in BUCKETS)
    print(f"{'':8} {header}")
    pooled: dict[str, list[float]] = {}
    for endpoint in bench.ENDPOINTS:
        totals = sorted(r["total"] for e in rounds if e["endpoint"] == endpoint for r in e["requests"])
        pooled[endpoint] = totals
        counts = [0] * len(BUCKETS)
        for value in totals:
            counts[next(i for i, b in enumerate(BUCKETS) if value <= b)] += 1
        print(f"{endpoint:8} " + " ".join(f"{c:7d}" for c in counts))
    p99s = {e: [r["p99"] for r in rounds if r["endpoint"] == e] for e in bench.ENDPOINTS}
    median_ratio = statistics.median(p99s["gate"]) / statistics.median(p99s["trivial"])
    pooled_ratio = percentile(pooled["gate"], 0.99) / percentile(pooled["trivial"], 0.99)
    print(
        f"\np99 of each round (ms): trivial {', '.join(f'{v:.1f}' for v in p99s['trivial'])}; "
        f"gate {', '.join(f'{v:.1f}' for v in p99s['gate'])}"
    )
    print(
        f"gate/trivial p99: median of the rounds {median_ratio:.2f}; all requests pooled {pooled_ratio:.2f} "
        f"({percentile(pooled['gate'], 0.99):.1f} / {percentile(pooled['trivial'], 0.99):.1f} ms)"
    )
    if args.dump:
        args.dump.write_text(json.dumps({"rate": rate, "rounds": rounds}))


if __name__ == "__main__":
    main()
