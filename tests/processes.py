"""Child processes the tests and benchmarks start (servers, brokers, workers): how to stop one."""

import subprocess


def process_stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Ask ``process`` to stop (SIGTERM), and kill it if it has not within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
