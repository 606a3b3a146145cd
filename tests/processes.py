"""Child processes the tests and benchmarks start (servers, brokers, workers, witnesses): a port
for one to listen on, and how to stop one."""

import socket
import subprocess
from typing import Any


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_stop(process: subprocess.Popen[Any], timeout: float) -> None:
    """Ask ``process`` to stop (SIGTERM), kill it if it has not within ``timeout`` seconds, and
    close the pipe of its output if it had one."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()
