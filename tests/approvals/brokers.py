"""A private Redis broker a test can stop without disturbing anything else (a worker on it:
``tests.workers.celery_worker``)."""

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import kombu.pools

from releasegate.celery import app as celery_app
from tests.processes import free_port, process_stop


class PrivateRedis:
    """``redis-server`` on a free port of 127.0.0.1, in memory only; stop and start at will."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.process is None, "already running"
        in_memory = ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", *in_memory],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        process_stop(self.process, timeout=10)
        self.process = None
        assert not self.answers()

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as client:
                client.sendall(b"PING\r\n")
                return client.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def _reset_publishing() -> None:
    """Celery keeps its publishing connection pools for the life of the process (it drops them
    only after a fork, the same way); close and drop them so that the next publish connects to
    the broker configured now."""
    kombu.pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextmanager
def publishing_to(broker_url: str) -> Iterator[None]:
    """This test process publishes to ``broker_url`` (not eagerly) until the block ends, then
    to whatever it published to before. The environment variable is what Celery reads first
    (``conf.broker_url`` prefers ``CELERY_BROKER_URL`` over the configuration)."""
    saved_env = os.environ.get("CELERY_BROKER_URL")
    saved_eager = celery_app.conf.task_always_eager
    _reset_publishing()
    os.environ["CELERY_BROKER_URL"] = broker_url
    celery_app.conf.task_always_eager = False
    try:
        assert celery_app.conf.broker_write_url == broker_url
        yield
    finally:
        _reset_publishing()
        if saved_env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = saved_env
        celery_app.conf.task_always_eager = saved_eager
