"""One HTTP server on 127.0.0.1 for the fake outside world (webhook receivers, GitHub, the CLI's
server): started on a free port in a thread, stopped and joined when the block ends."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# How often a serving thread looks whether shutdown() was asked for. The standard library's
# 0.5 s made every test that stops a server wait about half a second in its teardown (one
# selector wake-up per 10 ms of an idle server costs next to nothing).
POLL_SECONDS = 0.01


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output free of access log lines."""

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def local_server(handler: type[BaseHTTPRequestHandler], *, name: str) -> Iterator[ThreadingHTTPServer]:
    """Serve ``handler`` on 127.0.0.1 (a free port: ``server.server_address``) until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), name=name, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def url_of(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"
