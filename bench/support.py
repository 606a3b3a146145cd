"""What the benchmarks share: their scratch PostgreSQL database, and their sections of
docs/benchmarks.md."""

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"

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
