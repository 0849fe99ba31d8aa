"""Lambda's Invoke API on 127.0.0.1 for a function that AWS invokes asynchronously (EventBridge rules, CloudWatch
Logs subscriptions): what the local stand-ins of those services call.

``POST /2015-03-31/functions/<name>/invocations`` with the event as body
(https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html):

- ``X-Amz-Invocation-Type: Event``: answered 202 at once; the event waits in the function's queue and is handled
  one at a time (one execution environment). A failed invocation is retried twice, as Lambda retries asynchronous
  invocations (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html), after
  ``retry_delay`` and twice that (one and two minutes in AWS, ``DEVSTACK_ASYNC_RETRY_SECONDS``, default 1 s,
  locally); an event that still fails is logged and kept in :attr:`InvokeServer.dead_letters` (the template's
  dead-letter queue).
- ``RequestResponse`` (the default): handled at once, answered 200 with the result, or with
  ``X-Amz-Function-Error: Unhandled`` and ``{"errorType", "errorMessage"}`` when the handler raised.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

from devstack.threaded_server import FunctionServer, Handler, ThreadedServer

log = logging.getLogger("devstack.invoke")

ASYNC_RETRIES = 2
RETRY_ENV = "DEVSTACK_ASYNC_RETRY_SECONDS"


class InvokeServer(FunctionServer):
    def __init__(
        self,
        handler: Handler,
        *,
        function_name: str,
        timeout_seconds: float = 30.0,
        port: int = 0,
        retry_delay: float = 1.0,
    ) -> None:
        http = ThreadedServer(_http_handler(self), port, name=f"invoke-{function_name}")
        super().__init__(handler, function_name, timeout_seconds, http)
        self._retry_delay = retry_delay
        self._queue: queue.Queue[tuple[float, int, dict[str, Any]] | None] = queue.Queue()
        self._retries: list[threading.Timer] = []
        self.dead_letters: list[dict[str, Any]] = []
        self._worker: threading.Thread | None = None

    def url(self) -> str:
        return self._http.url(f"/2015-03-31/functions/{self.function_name}/invocations")

    def start(self) -> Self:
        super().start()
        self._worker = threading.Thread(target=self._run_async, name="async-invocations", daemon=True)
        self._worker.start()
        return self

    def stop(self) -> None:
        super().stop()
        for timer in self._retries:
            timer.cancel()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout=self._timeout)
            self._worker = None

    def invoke(self, event: dict[str, Any]) -> Any:
        """One synchronous invocation; the handler's exception propagates."""
        return self._call(event)

    def enqueue(self, event: dict[str, Any], attempt: int = 0) -> None:
        self._queue.put((time.monotonic(), attempt, event))

    def _run_async(self) -> None:
        while (item := self._queue.get()) is not None:
            _, attempt, event = item
            try:
                self.invoke(event)
            except Exception as exc:
                if attempt < ASYNC_RETRIES:
                    delay = self._retry_delay * (attempt + 1)
                    log.warning("%s failed (%s); retry %d in %.1f s", self.function_name, exc, attempt + 1, delay)
                    timer = threading.Timer(delay, self.enqueue, args=(event, attempt + 1))
                    timer.daemon = True
                    self._retries = [t for t in self._retries if t.is_alive()] + [timer]
                    timer.start()
                else:
                    log.error("%s failed %d times; kept as a dead letter: %s", self.function_name, attempt + 1, exc)
                    self.dead_letters.append(event)


def _http_handler(server: InvokeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else json.dumps(body, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            if self.path.split("?")[0] != f"/2015-03-31/functions/{server.function_name}/invocations":
                self._answer(404, {"Type": "User", "message": f"Function not found: {self.path}"})
                return
            try:
                event = json.loads(raw)
            except ValueError:
                self._answer(400, {"Type": "User", "message": "the event is not JSON"})
                return
            if self.headers.get("X-Amz-Invocation-Type", "RequestResponse") == "Event":
                server.enqueue(event)
                self._answer(202, None)
                return
            try:
                result = server.invoke(event)
            except Exception as exc:
                error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
                self._answer(200, error, {"X-Amz-Function-Error": "Unhandled"})
                return
            self._answer(200, result)

    return Handler
