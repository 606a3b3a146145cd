"""What the benchmarks share: their scratch PostgreSQL database, their sections of
docs/benchmarks.md, and how they describe the code and machine they measured."""

import argparse
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"

DOCS_INTRO = """# Benchmarks

Figures measured on the machines this project is built on: 2 cores, shared and noisy.
Absolute numbers drift from run to run by 10 to 30 %, so every figure here is the median of
repeated runs, and the comparisons are ratios against baselines measured in the same run,
which hold much better than the absolute numbers. Each benchmark is a script under `bench/`
(a benchmark, not a test) that writes its own section below; rerun it to update the section.
Bench-only dependencies are the `bench` extra (`pip install -e '.[dev,bench]'`).

"""


def admin_url(url: str) -> tuple[str, str]:
    """The server's maintenance database, and the scratch database's name."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or parts.scheme not in {"postgres", "postgresql"}:
        raise SystemExit(f"--database-url must be postgres://…/name, not {url!r}")
    return urlunsplit(parts._replace(scheme="postgresql", path="/postgres")), name


def database_create(url: str) -> None:
    """A new, empty scratch database (dropping one left behind)."""
    database_drop(url)
    import psycopg
    from psycopg import sql

    admin, name = admin_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_drop(url: str) -> None:
    import psycopg
    from psycopg import sql

    admin, name = admin_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def docs_write(section: str, *, begin: str, end: str) -> None:
    """Replace a benchmark's section (between its markers), or append it; leave the rest."""
    text = DOCS.read_text() if DOCS.exists() else DOCS_INTRO
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        text = before + section + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text)


def arguments(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's options, described by the first paragraph of its docstring."""
    return argparse.ArgumentParser(
        description=(doc or "").split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )


def progress_log() -> Callable[[str], None]:
    """A benchmark's progress lines, each with the seconds since this was called."""
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    return log


def section_publish(section: str, *, begin: str, end: str, write: bool, log: Callable[[str], None]) -> None:
    """Print a benchmark's section of docs/benchmarks.md and, unless ``write`` is off, write it there."""
    print(section)
    if write:
        docs_write(section, begin=begin, end=end)
        log(f"wrote {DOCS.relative_to(ROOT)}")


def commit_described() -> str:
    """The commit measured, e.g. "c2069bc (with local changes)"; "?" outside a git checkout."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    return git("rev-parse", "--short", "HEAD") + (" (with local changes)" if git("status", "--porcelain") else "")


def cpus_described() -> str:
    """e.g. "2 CPUs, AMD EPYC": this machine kind's CPU model changes between sessions."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    model = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "?")
    return f"{os.cpu_count()} CPUs, {model}"


def percentile(ordered: list[float], share: float) -> float:
    """The value ``share`` of the way up a sorted list (the nearest rank at or below it)."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]
