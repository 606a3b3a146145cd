"""A guard that fails any test which reads a file outside the repository.

A fresh clone has nothing beside it (no ``../shared``), so test data must live inside the
repository (tests/data). Python's audit hook sees every ``open`` of this process; a read of a
path under none of the roots below is recorded and fails the test that made it. Programs the
tests start (Chromium, PostgreSQL, Node) are not this process and are not watched.
"""

import os
import site
import sys
import sysconfig
import tempfile
from collections.abc import Iterable
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]

# What a test may read besides the repository: the interpreter and installed packages,
# temporary files, and the operating system's own files (certificates, time zones, devices).
_SYSTEM_ROOTS = ("/usr", "/lib", "/lib64", "/etc", "/proc", "/sys", "/dev", "/run", "/var/lib", "/opt", "/root/.pyenv")


def allowed_roots() -> tuple[str, ...]:
    roots: set[str] = {str(REPOSITORY), tempfile.gettempdir(), *_SYSTEM_ROOTS}
    roots |= {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots |= {path for path in sysconfig.get_paths().values() if path}
    roots |= set(site.getsitepackages())
    return tuple(sorted(os.path.realpath(root) for root in roots))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def is_outside(path: str, roots: Iterable[str], repository: Path = REPOSITORY) -> bool:
    """Outside means under none of ``roots``, or beside the repository: a clone made inside an
    allowed root (CI clones into a temporary folder) must still not read its neighbours, which
    is where ``../shared`` sits on a developer's machine."""
    real = os.path.realpath(path)
    inside_repository = _under(real, os.path.realpath(repository))
    parent = os.path.realpath(repository.parent)
    roots = tuple(roots)
    if not inside_repository and parent not in roots and _under(real, parent):
        return True
    return not inside_repository and not any(_under(real, root) for root in roots)


class OutsideReads:
    """Collects reads outside the allowed roots while ``armed``."""

    def __init__(self, roots: tuple[str, ...], repository: Path = REPOSITORY) -> None:
        self.roots = roots
        self.repository = repository
        self.armed = False
        self.seen: list[str] = []

    def hook(self, event: str, args: tuple[object, ...]) -> None:
        if not self.armed or event != "open":
            return
        path, mode = args[0], args[1]
        if not isinstance(path, str | bytes | os.PathLike) or isinstance(path, int):
            return
        if isinstance(mode, str) and any(flag in mode for flag in "wax+"):
            return  # writing somewhere is not reading data from outside
        if isinstance(mode, int) and mode & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            return
        text = os.path.abspath(os.fsdecode(path))
        if is_outside(text, self.roots, self.repository):
            self.armed = False  # the checks below open files too
            try:
                self.seen.append(text)
            finally:
                self.armed = True
