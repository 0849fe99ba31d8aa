"""One lifecycle for the local HTTP servers (the API, the receivers): bind on 127.0.0.1 (or the ``host`` given: a
Docker bridge's gateway for the servers `sam local invoke`'s containers call), serve from a thread, stop; and one
execution environment of a function behind such a server (the HTTP API, Lambda's Invoke API)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from devstack.lambda_context import LocalLambdaContext
from devstack.lifecycle import Lifecycle

HOST = "127.0.0.1"
Handler = Callable[[dict[str, Any], Any], Any]


class ThreadedServer(Lifecycle):
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


class FunctionServer(Lifecycle):
    """``handler`` served by ``http``, one invocation at a time, as Lambda runs one request per execution environment
    (the handler's module-level state, e.g. the Powertools resolver's current event, is not shared between requests).
    """

    def __init__(self, handler: Handler, function_name: str, timeout_seconds: float, http: ThreadedServer) -> None:
        self._handler = handler
        self.function_name = function_name
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self._http = http

    @property
    def port(self) -> int:
        return self._http.port

    def start(self) -> Self:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def _call(self, event: dict[str, Any], context: LocalLambdaContext | None = None) -> Any:
        """The handler's answer to ``event``; its context's time runs from now unless ``context`` is given."""
        context = context or LocalLambdaContext(self.function_name, timeout_seconds=self._timeout)
        with self._lock:
            return self._handler(event, context)
