"""The suite carries its own data: a fresh clone with nothing beside it runs `make test`."""

import subprocess
import sys
from pathlib import Path

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


def run_probe(probe: Path) -> subprocess.CompletedProcess[str]:
    """Run one throwaway test file with pytest in a child process, under this conftest."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", str(probe)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_test_that_reads_outside_the_repository_fails(tmp_path: Path) -> None:
    """Shown with a throwaway test run by pytest in a child process, under this conftest."""
    outside = REPOSITORY.parent / f".outside-{tmp_path.name}.txt"
    outside.write_text("data that a fresh clone does not have\n")
    probe = REPOSITORY / "tests" / f"test_probe_{tmp_path.name}.py"
    probe.write_text(f"def test_reads_beside_the_repository():\n    open({str(outside)!r}).read()\n")
    try:
        result = run_probe(probe)
    finally:
        probe.unlink()
        outside.unlink()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the test read files outside the repository" in result.stdout


def test_a_test_that_connects_beyond_the_loopback_fails(tmp_path: Path) -> None:
    """Shown with a throwaway test, run by pytest in a child process under this conftest: it
    asks for an address on the internet (the lookup alone is refused; nothing is sent)."""
    probe = REPOSITORY / "tests" / f"test_probe_net_{tmp_path.name}.py"
    probe.write_text(
        "import socket\n\n\ndef test_reaches_out():\n"
        "    try:\n        socket.create_connection(('example.com', 443), timeout=1)\n"
        "    except OSError:\n        pass\n"
    )
    try:
        result = run_probe(probe)
    finally:
        probe.unlink()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the test reached beyond this machine: [\"lookup 'example.com'\"]" in result.stdout


def test_the_network_guard_lets_the_loopback_through() -> None:
    guard = OutsideConnections()
    guard.armed = True
    guard.hook("socket.getaddrinfo", ("localhost", 5432, 0, 0, 0, 0))
    guard.hook("socket.getaddrinfo", ("127.0.0.1", 6379, 0, 0, 0, 0))
    guard.hook("socket.getaddrinfo", ("10.0.0.8", 443, 0, 0, 0, 0))
    assert guard.seen == ["lookup '10.0.0.8'"]
