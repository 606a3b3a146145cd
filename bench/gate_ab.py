"""A/B of code trees on the gate benchmark, in one sitting (a benchmark, not a test).

    .venv/bin/python bench/gate.py --keep-database --no-docs --database-url postgres://…/rg_ab
    .venv/bin/python bench/gate_ab.py postgres://…/rg_ab TREE_A TREE_B … [--rounds 5] [--seconds 6] [--open]

On a shared machine two runs of bench/gate.py one after the other are measured under different
loads. Here every tree (a checkout, e.g. ``git archive <commit> | tar -x -C /tmp/a``) gets its own
gunicorn (bench/gate.py's settings and workers) against one database that bench/gate.py built and
kept, and the rounds alternate trees and endpoints in a rotating order, so that whatever else
the machine does falls on all of them alike. Per tree: each endpoint's throughput, p99 and CPU
per request (gunicorn + PostgreSQL), the gate/trivial ratios, and with ``--open`` the open loop's
p99 at half the trivial endpoint's median throughput. The trees share the virtualenv this
script runs in; each serves its own code (``--chdir`` and ``PYTHONPATH``).
"""

import argparse
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
    sys.path.insert(0, str(ROOT))

from bench import gate as bench  # noqa: E402 (after the path is set)


def setup_read(url: str) -> dict[str, Any]:
    """A fresh token of the bench's pipeline account and the digest the gate allows."""
    from django.db import connection, transaction

    from changelogs.models import ChangelogRevision
    from core.actors import Actor
    from releasegate.models import User
    from releasegate.services import api_token_issue
    from releasegate.tokens import ALL_SCOPES

    account = User.objects.filter(is_service_account=True).order_by("id").first()
    if account is None:
        raise SystemExit(f"{url}: no history of bench/gate.py here (run it with --keep-database)")
    with transaction.atomic():
        _, plain = api_token_issue(acting_user=Actor("system:bench"), account=account, name="A/B", scopes=ALL_SCOPES)
    revision = (
        ChangelogRevision.objects.filter(changelog__service__slug=bench.SERVICE, changelog__status="approved")
        .order_by("-created_at")
        .first()
    )
    if revision is None:
        raise SystemExit(f"{url}: no approved changelog of {bench.SERVICE}")
    return {"token": plain, "digest": revision.artifact_digest, "database": connection.settings_dict["NAME"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database_url", help="a database bench/gate.py built and kept (--keep-database)")
    parser.add_argument("trees", nargs="+", help="checkouts to compare")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--workers", type=int, default=bench.WORKERS)
    parser.add_argument("--open", action="store_true", help="also the open loop at half the trivial's throughput")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="releasegate-bench-gate-ab-"))
    environment = bench.server_environment(args.database_url, var)
    bench.django_setup(environment)
    setup = setup_read(args.database_url)
    from django.db import connections

    connections.close_all()
    scripts = {endpoint: bench.wrk_script(var, endpoint, setup) for endpoint in bench.ENDPOINTS}
    combos = [(tree, endpoint) for tree in args.trees for endpoint in bench.ENDPOINTS]
    closed: dict[tuple[str, str], list[dict[str, float]]] = {combo: [] for combo in combos}
    paced: dict[tuple[str, str], list[dict[str, float]]] = {combo: [] for combo in combos}

    def rotated(number: int) -> list[tuple[str, str]]:
        order = combos[number % len(combos) :] + combos[: number % len(combos)]
        return order[::-1] if number % 2 else order

    with ExitStack() as stack:
        bases = {tree: stack.enter_context(bench.server(environment, args.workers, Path(tree))) for tree in args.trees}
        for (tree, endpoint), base in ((combo, bases[combo[0]]) for combo in combos):
            status, answer = bench.request(base, endpoint, setup)
            if status != 200 or (endpoint == "gate" and answer.get("decision") != "allow"):
                raise SystemExit(f"{tree} {endpoint}: unexpected answer {status} {answer}")
            bench.wrk_run(bench.target(base, endpoint, setup)[0], scripts[endpoint], 2)
        for number in range(args.rounds):
            for tree, endpoint in rotated(number):
                base = bases[tree]
                port = int(base.rsplit(":", 1)[1])
                before, machine_before = bench.processes(port, setup["database"]), bench.machine_seconds()
                figures = bench.wrk_run(bench.target(base, endpoint, setup)[0], scripts[endpoint], args.seconds)
                used = bench.cpu_used(before, bench.processes(port, setup["database"]))
                total, busy = (e - s for e, s in zip(bench.machine_seconds(), machine_before, strict=True))
                figures["app_ms"] = used["app"] / figures["requests"] * 1000
                figures["db_ms"] = used["db"] / figures["requests"] * 1000
                figures["others"] = max(0.0, busy - used["app"] - used["db"] - figures["wrk_seconds"]) / total
                closed[(tree, endpoint)].append(figures)
                print(
                    f"round {number + 1} {tree} {endpoint:<8} {figures['rps']:6.0f} req/s  p99 {figures['p99']:6.1f} ms"
                    f"  CPU per request {figures['app_ms']:.2f} + {figures['db_ms']:.2f} ms"
                    f"  others {figures['others']:.0%}",
                    flush=True,
                )
        if args.open:
            rate = bench.OPEN_RATE_SHARE * statistics.median(
                run["rps"] for tree in args.trees for run in closed[(tree, "trivial")]
            )
            for number in range(args.rounds):
                for tree, endpoint in rotated(number):
                    figures = bench.paced_run(bases[tree], endpoint, setup, rate=rate, seconds=args.seconds)
                    paced[(tree, endpoint)].append(figures)
                    print(
                        f"open loop {number + 1} {tree} {endpoint:<8} at {rate:.0f} req/s: p99 {figures['p99']:.1f} ms"
                    )

    print("\nmedians of the rounds:")
    for tree in args.trees:

        def median(endpoint: str, key: str, tree: str = tree) -> float:
            return statistics.median(run[key] for run in closed[(tree, endpoint)])

        def cpu(endpoint: str) -> float:
            return median(endpoint, "app_ms") + median(endpoint, "db_ms")

        line = (
            f"{tree}: gate {median('gate', 'rps'):.0f} req/s, CPU {median('gate', 'app_ms'):.2f} + "
            f"{median('gate', 'db_ms'):.2f} ms; trivial {median('trivial', 'rps'):.0f} req/s, CPU "
            f"{median('trivial', 'app_ms'):.2f} + {median('trivial', 'db_ms'):.2f} ms; gate/trivial: throughput "
            f"{median('gate', 'rps') / median('trivial', 'rps'):.2f}, CPU {cpu('trivial') / cpu('gate'):.2f}, "
            f"p99 closed {median('gate', 'p99') / median('trivial', 'p99'):.2f}"
        )
        if args.open:
            p99 = {e: statistics.median(run["p99"] for run in paced[(tree, e)]) for e in bench.ENDPOINTS}
            line += f", p99 open loop {p99['gate']:.1f} / {p99['trivial']:.1f} ms = {p99['gate'] / p99['trivial']:.2f}"
        print(line)


if __name__ == "__main__":
    main()
