"""Threads started together under coverage and an audit hook all run (tests/thread_starts.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.outside_reads import REPOSITORY

SCRIPT = """
import sys, threading, time
if sys.argv[1] == "patient":
    from tests.thread_starts import patient_trace_installs
    patient_trace_installs()
# An audit hook that lets other threads in while sys.settrace runs, as any Python hook may.
sys.addaudithook(lambda event, args: time.sleep(0.002) if event == "sys.settrace" else None)
ran = []
threads = [threading.Thread(target=ran.append, args=(n,)) for n in range(40)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(len(ran))
"""


def _threads_that_ran_under_coverage(mode: str, tmp_path: Path) -> int:
    script = tmp_path / "threads.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, "-m", "coverage", "run", f"--data-file={tmp_path / 'coverage'}", str(script), mode],
        cwd=REPOSITORY,
        env={"PYTHONPATH": str(REPOSITORY), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="CPython 3.12 and later have no such race (gh-98257)")
def test_without_the_shim_threads_started_together_under_coverage_die(tmp_path: Path) -> None:
    """Shows the race the shim is for, so that the next test means something."""
    assert _threads_that_ran_under_coverage("plain", tmp_path) < 40


def test_with_the_shim_every_thread_started_together_under_coverage_runs(tmp_path: Path) -> None:
    assert _threads_that_ran_under_coverage("patient", tmp_path) == 40
