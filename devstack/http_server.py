"""A local API Gateway HTTP API: HTTP requests in, payload-2.0 Lambda proxy events to the handler, responses out.

One execution environment (``devstack.threaded_server.FunctionServer``): invocations run one at a time.
Several environments (processes) can serve one port with ``reuse_port`` (SO_REUSEPORT, Linux).
Like API Gateway, a handler error answers 500 ``{"message": "Internal Server Error"}`` and a body over 10 MB
answers 413.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from devstack.apigw import HttpResult, http_api_event, http_result
from devstack.lambda_context import LocalLambdaContext
from devstack.template_config import HttpRoute
from devstack.threaded_server import FunctionServer, Handler, ThreadedServer

log = logging.getLogger("devstack.api")

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # HTTP API quota


def _error(status: int, message: str) -> HttpResult:
    return HttpResult(status, {"content-type": "application/json"}, json.dumps({"message": message}).encode())


class HttpApiServer(FunctionServer):
    """Serves every method and path on 127.0.0.1:``port`` through ``handler`` (port 0 picks a free one), the
    function's ``routes`` (its HttpApi events in the template) giving each event its route key."""

    def __init__(
        self,
        handler: Handler,
        *,
        function_name: str,
        routes: Sequence[HttpRoute],
        timeout_seconds: float = 30.0,
        port: int = 3000,
        reuse_port: bool = False,
    ) -> None:
        self._routes = tuple(routes)
        # Several execution environments behind one port: the kernel spreads connections.
        http = ThreadedServer(_request_handler(self), port, name="http-api", reuse_port=reuse_port)
        super().__init__(handler, function_name, timeout_seconds, http)

    @property
    def url(self) -> str:
        return self._http.url()

    def invoke(self, method: str, target: str, headers: dict[str, str], body: bytes | None) -> HttpResult:
        """What API Gateway answers for one request."""
        parts = urlsplit(target)
        event = http_api_event(
            method, parts.path or "/", body=body, headers=headers, query=parts.query, routes=self._routes
        )
        context = LocalLambdaContext(self.function_name, timeout_seconds=self._timeout)
        try:
            result = http_result(json.loads(json.dumps(self._call(event, context))))
        except Exception:
            log.exception("%s failed", self.function_name)
            return _error(500, "Internal Server Error")
        result.headers.setdefault("content-type", "application/json")
        result.headers["apigw-requestid"] = event["requestContext"]["requestId"]
        return result


def _request_handler(api: HttpApiServer) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway offers
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            started = time.perf_counter()
            headers: dict[str, str] = {}
            for name, value in self.headers.items():  # repeated headers are joined, as API Gateway does
                key = name.lower()
                headers[key] = f"{headers[key]},{value}" if key in headers else value
            length = int(headers.get("content-length") or 0)
            if "chunked" in headers.get("transfer-encoding", ""):
                result = _error(411, "Length Required")
                self.close_connection = True
            elif length > MAX_PAYLOAD_BYTES:
                result = _error(413, "Request Entity Too Large")
                self.close_connection = True
            else:
                body = self.rfile.read(length) if length else None
                result = api.invoke(self.command, self.path, headers, body)
            self.send_response(result.status)
            for name, value in result.headers.items():
                if name not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(result.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(result.body)
            elapsed = (time.perf_counter() - started) * 1000
            log.info("%s %s %d %.1fms", self.command, urlsplit(self.path).path, result.status, elapsed)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            return  # one line per request is logged by _serve

    return RequestHandler
