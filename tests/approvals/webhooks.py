"""A real webhook receiver on 127.0.0.1, and the signature check exactly as
docs/notifications.md gives it to receivers."""

import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.client import HTTPMessage
from pathlib import Path
from typing import Any

from tests.local_server import QuietHandler, local_server, url_of

DOCS = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"
SECRET = "test-webhook-secret-0123456789abcdef"


@dataclass
class Received:
    path: str
    headers: HTTPMessage  # looks names up case-insensitively, like a receiver's framework does
    body: bytes
    status: int

    @property
    def delivery(self) -> str:
        return str(self.headers["X-ReleaseGate-Delivery"])


@dataclass
class Receiver:
    """Answers each POST with the next scripted status, then with ``otherwise``. With ``hold``
    set, a request waits for it before answering (and sets ``arrived`` first)."""

    url: str = ""
    script: deque[int] = field(default_factory=deque)
    otherwise: int = 200
    received: list[Received] = field(default_factory=list)
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, statuses: Iterable[int], *, otherwise: int = 200) -> None:
        self.script = deque(statuses)
        self.otherwise = otherwise

    def statuses(self) -> list[int]:
        with self.lock:
            return [request.status for request in self.received]

    def _respond(self, path: str, headers: HTTPMessage, body: bytes) -> int:
        self.arrived.set()
        if self.hold is not None:
            self.hold.wait(timeout=30)
        with self.lock:
            status = self.script.popleft() if self.script else self.otherwise
            self.received.append(Received(path=path, headers=headers, body=body, status=status))
        return status


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 - the standard library names it
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = receiver._respond(self.path, self.headers, body)
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/somewhere-else")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    with local_server(Handler, name="webhook-receiver") as server:
        receiver.url = f"{url_of(server)}/hooks/release-gate"
        try:
            yield receiver
        finally:
            if receiver.hold is not None:
                receiver.hold.set()


def docs_verifier() -> Callable[..., dict[str, Any]]:
    """The Python snippet of docs/notifications.md, run as is: if the documentation's check
    stops accepting what we send, the tests say so."""
    match = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)
    assert match, "docs/notifications.md has no Python snippet"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), str(DOCS), "exec"), namespace)  # noqa: S102 - our own documentation
    verify: Callable[..., dict[str, Any]] = namespace["verify_release_gate_webhook"]
    return verify
