import socket


def test_reaches_out():
    try:
        socket.create_connection(('example.com', 443), timeout=1)
    except OSError:
        pass
