"""The suite carries its own data: a fresh clone with nothing beside it runs `make test`."""

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.network_guard import OutsideConnections
from tests.outside_reads import REPOSITORY, OutsideReads, allowed_roots, is_outside


def test_the_repository_and_the_interpreter_are_inside_the_allowed_roots() -> None:
    roots = allowed_roots()
    assert not is_outside(str(REPOSITORY / "tests" / "data" / "samples" / "README.md"), roots)
    assert not is_outside(sys.executable, roots)


def test_a_folder_beside_the_repository_is_outside() -> None:
    assert is_outside(str(REPOSITORY.parent / "shared" / "samples" / "README.md"), allowed_roots())


def test_a_clone_inside_the_temporary_folder_still_may_not_read_its_neighbours(tmp_path: Path) -> None:
    """CI clones into a temporary folder, which is itself an allowed root."""
    clone = tmp_path / "checkout" / "releasegate"
    roots = (str(tmp_path),)
    assert is_outside(str(clone.parent / "shared" / "samples" / "README.md"), roots, clone)
    assert not is_outside(str(clone / "tests" / "data" / "samples" / "README.md"), roots, clone)
    assert not is_outside(str(tmp_path / "pytest-of-root" / "data.json"), roots, clone)


def test_the_guard_records_a_read_outside_and_ignores_one_inside(tmp_path: Path) -> None:
    guard = OutsideReads(roots=(str(REPOSITORY),))
    guard.armed = True
    guard.hook("open", (str(tmp_path / "data.json"), "r", 0))
    guard.hook("open", (str(REPOSITORY / "README.md"), "r", 0))
    guard.hook("open", (str(tmp_path / "written.json"), "w", 0))
    assert guard.seen == [str(tmp_path / "data.json")]


def run_probes(*probes: Path) -> subprocess.CompletedProcess[str]:
    """Run throwaway test files with pytest in one child process, under this conftest."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", *map(str, probes)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@dataclass(frozen=True)
class ProbeRun:
    result: subprocess.CompletedProcess[str]
    reads_outside: str
    connects_outside: str

    def failure_of(self, test: str) -> str:
        """What pytest printed for the probe test named ``test`` (its failure and errors)."""
        sections = re.split(r"^_{3,} (.+?) _{3,}$", self.result.stdout, flags=re.MULTILINE)
        reports = [report for title, report in zip(sections[1::2], sections[2::2], strict=True) if test in title]
        assert reports, self.result.stdout + self.result.stderr
        return "\n".join(reports)


@pytest.fixture(scope="module")
def probe_run(tmp_path_factory: pytest.TempPathFactory) -> ProbeRun:
    """Two throwaway tests, one that reads beside the repository and one that asks for an
    address on the internet (the lookup alone is refused; nothing is sent), run by pytest in
    one child process under this conftest (a child's start costs seconds: one serves both)."""
    name = tmp_path_factory.mktemp("probe").name
    outside = REPOSITORY.parent / f".outside-{name}.txt"
    reads = REPOSITORY / "tests" / f"test_probe_{name}.py"
    connects = REPOSITORY / "tests" / f"test_probe_net_{name}.py"
    outside.write_text("data that a fresh clone does not have\n")
    try:
        reads.write_text(f"def test_reads_beside_the_repository():\n    open({str(outside)!r}).read()\n")
        connects.write_text(
            "import socket\n\n\ndef test_reaches_out():\n"
            "    try:\n        socket.create_connection(('example.com', 443), timeout=1)\n"
            "    except OSError:\n        pass\n"
        )
        result = run_probes(reads, connects)
    finally:
        reads.unlink(missing_ok=True)
        connects.unlink(missing_ok=True)
        outside.unlink()
    return ProbeRun(result, "test_reads_beside_the_repository", "test_reaches_out")


def test_a_test_that_reads_outside_the_repository_fails(probe_run: ProbeRun) -> None:
    assert probe_run.result.returncode == 1, probe_run.result.stdout + probe_run.result.stderr
    assert "the test read files outside the repository" in probe_run.failure_of(probe_run.reads_outside)


def test_a_test_that_connects_beyond_the_loopback_fails(probe_run: ProbeRun) -> None:
    assert probe_run.result.returncode == 1, probe_run.result.stdout + probe_run.result.stderr
    report = probe_run.failure_of(probe_run.connects_outside)
    assert "the test reached beyond this machine: [\"lookup 'example.com'\"]" in report


def test_the_network_guard_lets_the_loopback_through() -> None:
    guard = OutsideConnections()
    guard.armed = True
    guard.hook("socket.getaddrinfo", ("localhost", 5432, 0, 0, 0, 0))
    guard.hook("socket.getaddrinfo", ("127.0.0.1", 6379, 0, 0, 0, 0))
    guard.hook("socket.getaddrinfo", ("10.0.0.8", 443, 0, 0, 0, 0))
    assert guard.seen == ["lookup '10.0.0.8'"]
