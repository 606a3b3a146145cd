"""Helpers for audit tests: bypassing the append-only triggers the way an attacker with full
database rights would, and running the standalone verifier as an auditor would."""

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db import connection

from audit.triggers import create_statements, drop_statements

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def triggers_bypassed() -> Iterator[Any]:
    """PostgreSQL: a superuser's replication role disables the triggers for this session.
    SQLite: whoever owns the file can drop them. Yields a cursor for the tampering SQL."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
            try:
                yield cursor
            finally:
                cursor.execute("SET session_replication_role = DEFAULT")
        else:
            cursor.execute("PRAGMA foreign_keys = OFF")
            for statement in drop_statements("sqlite"):
                cursor.execute(statement)
            try:
                yield cursor
            finally:
                for statement in create_statements("sqlite"):
                    cursor.execute(statement)
                cursor.execute("PRAGMA foreign_keys = ON")


def run_verifier(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audit.verifier", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def write(path: Path, content: str | dict[str, Any] | list[Any]) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path
