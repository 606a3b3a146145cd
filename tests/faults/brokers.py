"""A broker that hangs: a TCP listener on 127.0.0.1 that lets clients connect (the kernel
completes the handshake into its backlog) and then never reads or answers a byte, as a
SIGSTOPped redis-server does."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hung_broker() -> Iterator[str]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # never accepted: connecting works, nothing is ever answered
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        listener.close()
