"""Local TCP ports: a free one the kernel picks, whether a given one is free, a preferred one if free."""

from __future__ import annotations

import socket
from collections.abc import Collection

HOST = "127.0.0.1"


def free_port(host: str = HOST, exclude: Collection[int] = ()) -> int:
    """A port nothing listens on at ``host`` (bound to port 0, the kernel's choice), none of ``exclude``."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in exclude:
            return port


def port_free(port: int, host: str = HOST) -> bool:
    """True when ``port`` can be bound on ``host`` (SO_REUSEADDR like the servers that will bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def preferred_port(port: int, host: str = HOST) -> int:
    """``port`` if it is free on ``host``, else any free port (0 means any)."""
    return port if port and port_free(port, host) else free_port(host)
