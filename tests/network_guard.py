"""A guard that fails any test which opens a network connection beyond this machine.

Tests talk to real local services (PostgreSQL, Redis, RabbitMQ, our own servers and fakes on
127.0.0.1) and never to the outside world, which a CI runner cannot reach and a test must not
depend on. Python's audit hook sees every ``socket.connect`` and name lookup of this process;
anything not on the loopback is recorded and fails the test that made it. Programs the tests
start (Chromium, Node) are not this process and are not watched.
"""

import ipaddress
import socket

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", ""})


def is_local(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return True  # not an internet address (a Unix socket path, say)
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a name other than localhost: a lookup of the outside world


class OutsideConnections:
    """Collects connections and name lookups beyond the loopback while ``armed``."""

    def __init__(self) -> None:
        self.armed = False
        self.seen: list[str] = []

    def hook(self, event: str, args: tuple[object, ...]) -> None:
        if not self.armed:
            return
        if event == "socket.connect":
            sock, address = args[0], args[1]
            internet = getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6)
            if internet and isinstance(address, tuple) and not is_local(address[0]):
                self.seen.append(f"connect {address[0]}:{address[1]}")
        elif event == "socket.getaddrinfo" and not is_local(args[0]):
            self.seen.append(f"lookup {args[0]!r}")
