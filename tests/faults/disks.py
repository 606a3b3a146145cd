"""A small disk a test can fill: a tmpfs of a few dozen KB mounted under the test's temporary
folder (the machine's own kernel says ENOSPC, nothing of ours is mocked). Needs root, as CI and
the developers' machines have; elsewhere the test is skipped with the reason."""

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_disk(where: Path, *, size_kb: int = 64) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("filling a real disk needs a tmpfs mount, which needs root (CI runs as root)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"could not mount a tmpfs to fill (no mount namespace for it?): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def fill(disk: Path, *, leave_bytes: int = 0) -> Path:
    """Write a filler file until the disk is full, then give back ``leave_bytes``."""
    filler = disk / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while os.write(descriptor, b"\0" * 1024):
            pass
    except OSError:
        pass
    finally:
        os.close(descriptor)
    if leave_bytes:
        size = filler.stat().st_size
        os.truncate(filler, max(0, size - leave_bytes))
    return filler
