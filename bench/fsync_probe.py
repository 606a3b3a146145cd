"""How long the disk takes to flush a gate check's worth of WAL, with nothing of ours running
(a benchmark, not a test): the baseline for the WAL flushes bench/gate_tail.py sees inside the
server.

    .venv/bin/python bench/fsync_probe.py [--directory /var/lib/postgresql] [--count 3000] [--rate 300]
        [--appending MB] [--busy N]

Writes ``--bytes`` (2,200: the WAL of one gate check, docs/benchmarks.md) and calls
``fdatasync`` ``--count`` times at ``--rate`` per second, into a scratch file in ``--directory``
(by default PostgreSQL's, so the same file system as its WAL). Meanwhile, if asked,
``--appending`` megabytes are appended to other scratch files of that directory without a
flush (ext4's ordered mode can make one file's flush wait for other files' new data), and
``--busy`` processes spin on the CPU. Prints the flush latency's p50, p90, p99, p99.9 and
maximum.
"""

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
    sys.path.insert(0, str(ROOT))

from bench.support import percentile  # noqa: E402 (after the path is set)


def spin(until: float) -> None:
    while time.monotonic() < until:
        pass


def append(directory: Path, megabytes: int, until: float) -> None:
    """``megabytes`` in 20 MB files, spread over the run, never flushed by us; removed after."""
    files = []
    chunk = os.urandom(1 << 20)
    pause = max(0.0, (until - time.monotonic()) / max(1, megabytes // 20) - 0.1)
    try:
        for number in range(max(1, megabytes // 20)):
            handle, name = tempfile.mkstemp(prefix="fsync-probe-append-", dir=directory)
            files.append(name)
            with os.fdopen(handle, "wb") as out:
                for _ in range(min(20, megabytes)):
                    out.write(chunk)
            if number < megabytes // 20 - 1:
                time.sleep(pause)
    finally:
        for name in files:
            os.unlink(name)


def flushes(directory: Path, *, count: int, rate: float, size: int) -> list[float]:
    """Each flush's time (ms): write ``size`` bytes, then fdatasync, ``count`` times at ``rate``."""
    handle, name = tempfile.mkstemp(prefix="fsync-probe-", dir=directory)
    block = os.urandom(size)
    latencies = []
    try:
        start = time.monotonic()
        for number in range(count):
            wait = start + number / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            began = time.monotonic()
            os.write(handle, block)
            os.fdatasync(handle)
            latencies.append((time.monotonic() - began) * 1000)
            if number % 2000 == 1999:  # stay within one WAL segment's size, as the WAL does
                os.lseek(handle, 0, os.SEEK_SET)
    finally:
        os.close(handle)
        os.unlink(name)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--directory", type=Path, default=Path("/var/lib/postgresql"))
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=300.0, help="flushes per second")
    parser.add_argument("--bytes", type=int, default=2200, help="written before each flush")
    parser.add_argument("--appending", type=int, default=0, help="MB appended to other files meanwhile")
    parser.add_argument("--busy", type=int, default=0, help="processes spinning on the CPU meanwhile")
    args = parser.parse_args()

    until = time.monotonic() + args.count / args.rate
    spinners = [multiprocessing.Process(target=spin, args=(until,)) for _ in range(args.busy)]
    for spinner in spinners:
        spinner.start()
    appender = threading.Thread(target=append, args=(args.directory, args.appending, until), daemon=True)
    if args.appending:
        appender.start()
    latencies = sorted(flushes(args.directory, count=args.count, rate=args.rate, size=args.bytes))
    for spinner in spinners:
        spinner.join()
    if args.appending:
        appender.join()
    figures = ", ".join(
        f"{name} {percentile(latencies, share):.2f} ms"
        for name, share in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999))
    )
    print(
        f"{args.count} flushes of {args.bytes:,} bytes at {args.rate:g}/s in {args.directory}"
        f" (appending {args.appending} MB, {args.busy} busy processes): {figures}, max {latencies[-1]:.2f} ms"
    )


if __name__ == "__main__":
    main()
