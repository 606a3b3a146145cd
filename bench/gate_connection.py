"""What a new database connection costs the gate check and the trivial endpoint (a benchmark,
not a test).

    .venv/bin/python bench/gate_connection.py [--trials 30] [--steady 100] [--no-docs]

Builds bench/gate.py's small history in a scratch database and serves both of bench/gate.py's
endpoints in this process, through the production settings and middleware (Django's test
client: no network, so that what differs is the database connection alone). Each trial closes
the connection, as a worker does when it reaches its lifetime (``DATABASE_CONN_MAX_AGE``), and
times the endpoint's first ``FIRST`` requests on the new connection one by one, then ``--steady``
more; the endpoints alternate trial by trial. Per endpoint: the median time of the n-th request
on a new connection, the steady median, and the extra a new connection costs (the first
requests' medians less as many steady medians). A gunicorn worker pays that extra once per
connection lifetime: bench/gate.py's five workers with a lifetime of 60 s paid it five times a
minute, spread over their first checks, and each such check holds up the requests queued
behind it.
"""

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
    sys.path.insert(0, str(ROOT))

from bench import gate as bench  # noqa: E402 (after the path is set)
from bench.support import (  # noqa: E402
    arguments,
    commit_described,
    cpus_described,
    database_create,
    database_drop,
    progress_log,
    section_publish,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/releasegate_bench_connection"
BEGIN, END = "<!-- bench/gate_connection.py:start -->", "<!-- bench/gate_connection.py:end -->"
# PostgreSQL plans a prepared statement for its parameters five times before it weighs a generic
# plan (plancache.c): the gate's read is planned anew for its first checks on a connection.
FIRST = 8


def requester(setup: dict[str, Any]) -> Callable[[str], None]:
    """A function that sends one request of an endpoint and checks its answer."""
    from django.test import Client

    client = Client(SERVER_NAME="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {setup['token']}")

    def send(endpoint: str) -> None:
        url, method, body = bench.target("", endpoint, setup)
        response = client.post(url, data=body, content_type="application/json") if method == "POST" else client.get(url)
        if response.status_code != 200 or (endpoint == "gate" and response.json().get("decision") != "allow"):
            raise SystemExit(f"{endpoint}: unexpected answer {response.status_code} {response.content[:200]!r}")

    return send


def trial(send: Callable[[str], None], endpoint: str, steady: int) -> tuple[list[float], float]:
    """On a new connection: the first FIRST requests' times, and the median of ``steady`` more (ms)."""
    from django.db import connection

    connection.close()
    times = []
    for _ in range(FIRST + steady):
        started = time.perf_counter()
        send(endpoint)
        times.append((time.perf_counter() - started) * 1000)
    return times[:FIRST], statistics.median(times[FIRST:])


def report_markdown(results: dict[str, Any], command: str) -> str:
    figures = results["endpoints"]
    header = " | ".join(f"{n}." for n in range(1, FIRST + 1))
    rows = []
    for endpoint, label in (("trivial", "trivial endpoint"), ("gate", "**gate check**")):
        first, steady, extra = figures[endpoint]["first"], figures[endpoint]["steady"], figures[endpoint]["extra"]
        cells = " | ".join(f"{value:.1f}" for value in first)
        rows.append(f"| {label} | {cells} | {steady:.2f} | **{extra:.1f} ms** |")
    ratio = figures["gate"]["extra"] / figures["trivial"]["extra"]
    workers = results["workers"]
    return "\n".join(
        [
            BEGIN,
            "### What a new database connection costs (`bench/gate_connection.py`)",
            "",
            "```",
            command,
            "```",
            "",
            f"{results['date']}, commit {results['commit']}; {results['cpus']}, PostgreSQL {results['postgresql']} on "
            "the same machine, Python " + results["python"] + ".",
            "",
            "bench/gate.py's small history and endpoints, served in one process through the production settings "
            "and middleware (Django's test client, no network). Each trial closes the database connection, as a "
            "worker does when its connection reaches its lifetime, then times the endpoint's first requests on "
            f"the new connection one by one and {results['steady']} more; the endpoints alternate, "
            f"{results['trials']} trials each. Medians of the trials, in ms:",
            "",
            f"| endpoint | {header} | steady | extra for a new connection |",
            "|---|" + "---:|" * (FIRST + 2),
            *rows,
            "",
            f"A new connection costs the gate check {ratio:.1f} times what it costs the trivial endpoint: a new "
            "PostgreSQL backend loads the catalog of every table the gate's read names (about thirty) on its "
            "first check, and PostgreSQL plans a prepared statement for its parameters on its first five "
            "executions before it settles on a generic plan. Each gunicorn worker pays this once per "
            f"connection lifetime: with bench/gate.py's {workers} workers, "
            f"{workers * figures['gate']['extra'] / 60:.1f} ms of extra gate time per second at a lifetime of "
            f"60 s (Release Gate's setting until 2026-12-05), {workers * figures['gate']['extra'] / 600:.2f} ms "
            "at the 600 s now set (`DATABASE_CONN_MAX_AGE`), falling on a handful of checks and the requests "
            "queued behind them.",
            END,
        ]
    )


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="scratch database (created, dropped)")
    parser.add_argument("--trials", type=int, default=30, help="new connections per endpoint")
    parser.add_argument("--steady", type=int, default=100, help="requests after the first ones, per trial")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    log = progress_log()

    var = Path(tempfile.mkdtemp(prefix="releasegate-bench-connection-"))
    database_create(args.database_url)
    try:
        bench.django_setup(bench.server_environment(args.database_url, var))
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        setup = bench.history_build()
        send = requester(setup)
        for endpoint in bench.ENDPOINTS:  # warm this process's code paths, not the connection's
            trial(send, endpoint, args.steady)
        runs: dict[str, list[tuple[list[float], float]]] = {endpoint: [] for endpoint in bench.ENDPOINTS}
        for number in range(args.trials):
            for endpoint in bench.ENDPOINTS if number % 2 == 0 else bench.ENDPOINTS[::-1]:
                runs[endpoint].append(trial(send, endpoint, args.steady))
            if (number + 1) % 10 == 0:
                log(f"{number + 1}/{args.trials} trials")
        endpoints = {}
        for endpoint, trials in runs.items():
            first = [statistics.median(times[n] for times, _ in trials) for n in range(FIRST)]
            steady = statistics.median(steady for _, steady in trials)
            endpoints[endpoint] = {"first": first, "steady": steady, "extra": sum(first) - FIRST * steady}
            log(
                f"{endpoint:<8} first {FIRST}: {', '.join(f'{t:.1f}' for t in first)} ms; steady {steady:.2f} ms; "
                f"extra {endpoints[endpoint]['extra']:.1f} ms"
            )
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            postgresql = cursor.fetchone()[0]
    finally:
        from django.db import connections

        connections.close_all()
        database_drop(args.database_url)

    results = {
        "endpoints": endpoints,
        "trials": args.trials,
        "steady": args.steady,
        "workers": bench.WORKERS,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit_described(),
        "cpus": cpus_described(),
        "postgresql": postgresql,
        "python": sys.version.split()[0],
    }
    command = " ".join([".venv/bin/python bench/gate_connection.py", *sys.argv[1:]])
    section_publish(report_markdown(results, command), begin=BEGIN, end=END, write=not args.no_docs, log=log)


if __name__ == "__main__":
    main()
