"""One lifecycle for the local HTTP servers (the API, the receivers): bind on 127.0.0.1 (or the ``host`` given: a
Docker bridge's gateway for the servers `sam local invoke`'s containers call), serve from a thread, stop."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

HOST = "127.0.0.1"


class ThreadedServer:
    """A ``ThreadingHTTPServer`` on ``host``:``port`` (0 picks a free one) served by a daemon thread.

    ``reuse_port`` lets several processes serve one port (SO_REUSEPORT, Linux; the kernel spreads connections).
    """

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        port: int = 0,
        *,
        name: str = "http",
        reuse_port: bool = False,
        host: str = HOST,
    ) -> None:
        if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
            raise ValueError("several servers on one port need SO_REUSEPORT (Linux)")
        self._handler = handler
        self._host = host
        self._port = port
        self._name = name
        self._reuse_port = reuse_port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        return self._port

    def url(self, path: str = "") -> str:
        return f"http://{self._host}:{self._port}{path}"

    def start(self) -> ThreadedServer:
        server = ThreadingHTTPServer((self._host, self._port), self._handler, bind_and_activate=False)
        server.daemon_threads = True
        if self._reuse_port:
            server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            server.server_bind()
            server.server_activate()
        except OSError:
            server.server_close()
            raise
        self._server = server
        self._port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, name=self._name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close the socket and wait for the serving thread (requests in flight may still finish)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
