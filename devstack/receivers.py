"""An HTTP endpoint on 127.0.0.1 that plays Slack's incoming webhook or a webhook receiver.

It records every POST (path, headers, JSON body, what it answered), can be told to fail (the next N requests or
a fraction of them, with a chosen status and ``Retry-After``), to answer late (client timeouts) or to drop the
connection, and, given signing keys, verifies Standard Webhooks signatures on its own, independently of the
sender's code (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):

- ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` are required (401 ``unsigned`` without them);
- the timestamp must be ASCII decimal seconds within 5 minutes of now, either way (401 ``stale_timestamp``): an old
  request replayed;
- one of the space-separated ``v1,<base64>`` signatures must equal HMAC-SHA256 over ``<id>.<timestamp>.<body>``
  with one of the keys (``whsec_<base64>``; several during a rotation), compared in constant time (401
  ``invalid_signature``; a signature that is not ASCII matches nothing);
- a ``Content-Length`` that is not ASCII decimal digits is answered 400 ``bad_content_length``;
- a ``webhook-id`` (or, without one, an ``Idempotency-Key``) it already accepted is answered 200
  ``duplicate_ignored`` and not delivered again: a sender's retry after a lost answer stops, a replay does nothing.

Library use::

    with DeliveryReceiver(signing_key=["whsec_new...", "whsec_old..."]) as receiver:  # or path_keys={"/a": [...]}
        receiver.fail_next(1, status=429, retry_after=7)
        ...  # point the sender at receiver.url("/webhook")
        assert len(receiver.accepted()) == 1

CLI (the local stack's default Slack and webhook endpoint)::

    python -m devstack.receivers --port 3001 --signing-key whsec_... [--signing-key whsec_...]

prints one JSON line per request.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import random
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from types import FrameType
from typing import Any

from devstack.lifecycle import Lifecycle
from devstack.threaded_server import HOST, ThreadedServer

# ASCII digits only: str.isdigit() also takes "²" and other digits int() refuses, and int() refuses over 4300 digits.
_SECONDS = re.compile(r"[0-9]{1,15}")
_LENGTH = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class Delivery:
    """One request as received, and the status it was answered with (0: connection dropped)."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int
    signature_ok: bool | None  # None when the receiver has no signing key
    # A repeat of a ``webhook-id`` (or ``Idempotency-Key``) this receiver already accepted: answered 2xx, not a new
    # delivery (what a webhook consumer honouring the key does).
    replay: bool = False
    received_at: float = 0.0  # time.monotonic() on arrival

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300 and not self.replay


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: str | None


def _key(secret: str) -> bytes:
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not secret.startswith("whsec_") or len(key) < 32:
        raise ValueError("a signing key is 'whsec_' followed by base64 of at least 32 bytes")
    return key


def check_signature(
    secrets: Sequence[str], headers: dict[str, str], body: bytes, *, tolerance: float, now: float
) -> str | None:
    """None when the request is signed per Standard Webhooks by one of ``secrets``; else why not."""
    message_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    given = headers.get("webhook-signature", "").split()
    if not message_id or not timestamp or not given:
        return "unsigned"
    if not _SECONDS.fullmatch(timestamp) or abs(now - int(timestamp)) > tolerance:
        return "stale_timestamp"
    content = f"{message_id}.{timestamp}.".encode() + body
    expected = [
        base64.b64encode(hmac.new(_key(secret), content, hashlib.sha256).digest()).decode() for secret in secrets
    ]
    for item in given:
        version, _, value = item.partition(",")
        # compare_digest takes ASCII text only; a signature that is not ASCII is not base64 and matches nothing
        if version == "v1" and value.isascii() and any(hmac.compare_digest(value, c) for c in expected):
            return None
    return "invalid_signature"


class DeliveryReceiver(Lifecycle):
    def __init__(
        self,
        port: int = 0,
        *,
        signing_key: str | Sequence[str] | None = None,
        path_keys: Mapping[str, Sequence[str]] | None = None,
        tolerance_seconds: float = 300.0,
        seed: int = 0,
        on_delivery: Callable[[Delivery], None] | None = None,
        host: str = HOST,
    ) -> None:
        # The keys it accepts (a rotation has two); None: signatures are not checked (the Slack role).
        self.signing_keys = [signing_key] if isinstance(signing_key, str) else signing_key
        # Per path, the keys of the one sender whose destination that path is (each local shop's webhook has its
        # own); other paths get ``signing_keys``.
        self.path_keys = {path: list(keys) for path, keys in (path_keys or {}).items()}
        for secret in [*(self.signing_keys or ()), *(k for keys in self.path_keys.values() for k in keys)]:
            _key(secret)  # a malformed key is a setup error, found here and not on the first request
        self._tolerance = tolerance_seconds
        self._random = random.Random(seed)  # noqa: S311 - failure injection, not cryptography
        self._on_delivery = on_delivery
        self._lock = threading.Condition()
        self._deliveries: list[Delivery] = []
        self._accepted_keys: set[str] = set()
        self._failures: deque[_Failure] = deque()
        self._fraction: tuple[float, _Failure] | None = None
        self._delays: deque[float] = deque()
        self._drops = 0
        self._rate_limit: float | None = None
        self._arrivals: deque[float] = deque()
        self._stopping = threading.Event()
        self._http = ThreadedServer(_handler_for(self), port, name="delivery-receiver", host=host)

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> DeliveryReceiver:
        self._stopping.clear()
        self._http.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases requests held by answer_late
        self._http.stop()

    @property
    def port(self) -> int:
        return self._http.port

    def url(self, path: str = "/") -> str:
        return self._http.url(path)

    # -- behaviour ---------------------------------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503, retry_after: float | str | None = None) -> None:
        """Answer the next ``count`` requests with ``status`` (and ``Retry-After`` when given)."""
        with self._lock:
            value = None if retry_after is None else str(retry_after)
            self._failures.extend(_Failure(status, value) for _ in range(count))

    def fail_fraction(self, fraction: float, status: int = 503, retry_after: float | str | None = None) -> None:
        """Answer about ``fraction`` of the requests (seeded, so repeatable) with ``status``; 0 stops it."""
        with self._lock:
            value = None if retry_after is None else str(retry_after)
            self._fraction = (fraction, _Failure(status, value)) if fraction > 0 else None

    def limit_rate(self, per_second: float | None) -> None:
        """Answer 429 (``Retry-After: 1``) to every request beyond ``per_second`` in the last second, as a
        provider's quota does; None lifts the limit."""
        with self._lock:
            self._rate_limit = per_second
            self._arrivals.clear()

    def answer_late(self, count: int, seconds: float) -> None:
        """Hold each of the next ``count`` requests ``seconds`` before answering (to make clients time out)."""
        with self._lock:
            self._delays.extend(seconds for _ in range(count))

    def drop_next(self, count: int) -> None:
        """Close the connection of the next ``count`` requests without answering."""
        with self._lock:
            self._drops += count

    def reset(self) -> None:
        """Forget deliveries and pending failures."""
        with self._lock:
            self._deliveries.clear()
            self._accepted_keys.clear()
            self._failures.clear()
            self._fraction = None
            self._delays.clear()
            self._drops = 0
            self._rate_limit = None
            self._arrivals.clear()

    # -- what happened -----------------------------------------------------------------------------------------

    def deliveries(self, path: str | None = None) -> list[Delivery]:
        """Every request received (on ``path`` if given), in arrival order."""
        with self._lock:
            return [d for d in self._deliveries if path is None or d.path == path]

    def accepted(self, path: str | None = None) -> list[Delivery]:
        """The requests answered 2xx."""
        return [d for d in self.deliveries(path) if d.accepted]

    def replays(self, path: str | None = None) -> list[Delivery]:
        """The requests that repeated an accepted ``webhook-id``/``Idempotency-Key`` (answered 2xx, not delivered)."""
        return [d for d in self.deliveries(path) if d.replay]

    def wait_for(self, count: int, timeout: float = 30.0, path: str | None = None) -> list[Delivery]:
        """Block until ``count`` requests were accepted (or ``timeout`` passed); answer the accepted ones."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [d for d in self._deliveries if d.accepted and (path is None or d.path == path)]
                remaining = deadline - time.monotonic()
                if len(found) >= count or remaining <= 0:
                    return found
                self._lock.wait(remaining)

    # -- request handling (server threads) ---------------------------------------------------------------------

    def _decide(self, now: float) -> tuple[float, bool, _Failure | None]:
        with self._lock:
            if self._rate_limit is not None:
                while self._arrivals and now - self._arrivals[0] >= 1.0:
                    self._arrivals.popleft()
                self._arrivals.append(now)
                if len(self._arrivals) > self._rate_limit:
                    return 0.0, False, _Failure(429, "1")
            delay = self._delays.popleft() if self._delays else 0.0
            if self._drops:
                self._drops -= 1
                return delay, True, None
            if self._failures:
                return delay, False, self._failures.popleft()
            if self._fraction is not None and self._random.random() < self._fraction[0]:
                return delay, False, self._fraction[1]
            return delay, False, None

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)
            self._lock.notify_all()
        if self._on_delivery is not None:
            self._on_delivery(delivery)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        headers = {name.lower(): value for name, value in request.headers.items()}
        received_at = time.monotonic()
        length = headers.get("content-length") or "0"
        if not _LENGTH.fullmatch(length):
            self._record(Delivery(request.path, headers, b"", 400, None, received_at=received_at))
            request.close_connection = True  # the body's end is unknown: the connection cannot carry another request
            _answer(request, 400, b"bad_content_length", {})
            return
        body = request.rfile.read(int(length))
        delay, drop, failure = self._decide(received_at)
        if delay:
            self._stopping.wait(delay)
        refusal, signature_ok = None, None
        keys = self.path_keys.get(request.path, self.signing_keys)
        if keys is not None:
            refusal = check_signature(keys, headers, body, tolerance=self._tolerance, now=time.time())
            signature_ok = refusal is None
        if drop:
            self._record(Delivery(request.path, headers, body, 0, signature_ok, received_at=received_at))
            request.close_connection = True
            return
        extra: dict[str, str] = {}
        if failure is not None:
            status, answer = failure.status, b"failure_injected"
            if failure.retry_after is not None:
                extra["Retry-After"] = failure.retry_after
        elif refusal is not None:
            status, answer = 401, refusal.encode()
        else:
            status, answer = 200, b"ok"
        key = headers.get("webhook-id") or headers.get("idempotency-key")
        with self._lock:
            number = len(self._deliveries) + 1
            replay = status == 200 and key is not None and key in self._accepted_keys
            if status == 200 and key is not None:
                self._accepted_keys.add(key)
        if replay:
            answer = b"duplicate_ignored"
        # Slack answers with a request id header; harmless for the webhook role.
        extra["X-Slack-Req-Id"] = f"req-{number}"
        # Recorded before answering: once a client has its answer, the receiver already knows what it answered.
        self._record(
            Delivery(request.path, headers, body, status, signature_ok, replay=replay, received_at=received_at)
        )
        _answer(request, status, answer, extra)


def _answer(request: BaseHTTPRequestHandler, status: int, answer: bytes, headers: dict[str, str]) -> None:
    request.send_response(status)
    for name, value in {"Content-Type": "text/plain", "Content-Length": str(len(answer)), **headers}.items():
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(answer)


def _handler_for(receiver: DeliveryReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver._handle(self)

        def do_GET(self) -> None:  # readiness probe
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"up")

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.receivers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=3001, help="port on 127.0.0.1 (default: %(default)s)")
    parser.add_argument(
        "--signing-key",
        action="append",
        help="verify webhook-signature with this whsec_ key (repeat during a rotation; 401 when none matches)",
    )
    args = parser.parse_args(argv)

    def show(delivery: Delivery) -> None:
        line = {"path": delivery.path, "status": delivery.status, "signature_ok": delivery.signature_ok}
        try:
            line["body"] = delivery.json()
        except ValueError:
            line["body"] = delivery.body.decode("utf-8", "replace")
        print(json.dumps(line, ensure_ascii=False), flush=True)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with DeliveryReceiver(args.port, signing_key=args.signing_key, on_delivery=show) as receiver:
        print(f"receiving on {receiver.url()}", file=sys.stderr, flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
