"""Local stand-ins of the email and SMS providers, reporting on each message as AWS would.

The local SES v2 answers the email sender's ``SendEmail`` (``POST /v2/email/outbound-emails``, reached through
``AWS_ENDPOINT_URL_SESV2``), keeps each message, and does what SES's EventBridge event destination and rule do in
AWS (https://docs.aws.amazon.com/ses/latest/dg/monitoring-eventbridge.html): it invokes the feedback function
asynchronously with each SES event, as the mailbox simulator's addresses have them
(https://docs.aws.amazon.com/ses/latest/dg/send-an-email-from-console.html#send-email-simulator). The local SNS
passes every call on to moto's and reports each SMS published as SNS's delivery-status logs do. What a message
holds, the read API (``/_local/ses/messages``) and the events per address: docs/local-stack.md, "Emails and
provider feedback".
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

from devstack import ses_events
from devstack.threaded_server import HOST, ThreadedServer

log = logging.getLogger("devstack.ses")

SEND_EMAIL_PATH = "/v2/email/outbound-emails"
MESSAGES_PATH = "/_local/ses/messages"
MAX_MESSAGES = 5000
SIMULATOR_DOMAIN = "simulator.amazonses.com"
# How long after a send its events are published (SES's come seconds later; this keeps the order of AWS: the
# sender's own status write comes first).
EVENT_DELAY_SECONDS = 0.3
_SIMULATOR = re.compile(r"^(?P<box>[a-z]+)(\+[^@]*)?@" + re.escape(SIMULATOR_DOMAIN) + "$", re.IGNORECASE)

Invoker = Callable[[dict[str, Any]], bool]


def simulated_events(address: str) -> list[str]:
    """The SES event types a message to ``address`` produces (the mailbox simulator's, else Delivery)."""
    match = _SIMULATOR.match(address.strip())
    box = match.group("box").lower() if match else "success"
    return {
        "bounce": ["Bounce"],
        "suppressionlist": ["Bounce"],
        "complaint": ["Delivery", "Complaint"],
    }.get(box, ["Delivery"])


def lambda_invoker(url: str, timeout: float = 5.0) -> Invoker:
    """Invoke a function asynchronously through Lambda's Invoke API at ``url`` (the local worker's)."""

    def invoke(event: dict[str, Any]) -> bool:
        if not url.startswith("http://127.0.0.1:"):
            raise ValueError(f"the feedback function is invoked on 127.0.0.1 only, not {url}")
        request = urllib.request.Request(  # noqa: S310 - checked above: a local http URL
            url,
            data=json.dumps(event).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "X-Amz-Invocation-Type": "Event"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - see above
                return bool(answer.status == 202)
        except (urllib.error.URLError, OSError) as exc:
            log.warning("feedback function not reached: %s", exc)
            return False

    return invoke


class _EventServer:
    """A local provider: its own server on ``host``:``port`` (0: any free port), and a thread that hands the events
    it queues (``_publish``) to a function, in order. ``start()`` serves it, ``stop()`` ends both."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int, name: str, host: str = HOST) -> None:
        self._invoker: Invoker | None = None
        self._events: queue.Queue[Any] = queue.Queue()
        self._server = ThreadedServer(handler, port, name=name, host=host)
        self._name = name
        self._publisher: threading.Thread | None = None

    def start(self) -> Self:
        self._server.start()
        self._publisher = threading.Thread(target=self._publish, name=f"{self._name}-events", daemon=True)
        self._publisher.start()
        return self

    def stop(self) -> None:
        self._events.put(None)
        if self._publisher is not None:
            self._publisher.join(timeout=5)
            self._publisher = None
        self._server.stop()

    @property
    def url(self) -> str:
        return self._server.url()

    def _publish(self) -> None:
        raise NotImplementedError


class SesStandIn(_EventServer):
    """The stand-in's state and server; ``start()`` serves it on ``host``:``port`` (0: any free port)."""

    def __init__(self, port: int = 0, *, configuration_set: str = "notifications", host: str = HOST) -> None:
        self.configuration_set = configuration_set
        self._messages: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        super().__init__(_handler(self), port, "ses-stand-in", host)

    def deliver_events_to(self, invoker: Invoker | None) -> None:
        """Where SES events go (the feedback function's asynchronous invoke); None: nowhere (kept, not sent)."""
        self._invoker = invoker

    # -- read API -----------------------------------------------------------------------------------------------

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(json.dumps(m)) for m in self._messages.values()]

    def message(self, message_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._messages.get(message_id)
            return json.loads(json.dumps(found)) if found else None

    # -- SendEmail ----------------------------------------------------------------------------------------------

    def send_email(self, request: dict[str, Any]) -> str:
        """Keep one SendEmail request's message; schedule its events. Answers the message id."""
        simple = (request.get("Content") or {}).get("Simple")
        if not isinstance(simple, dict):
            raise ValueError("only Content.Simple is supported locally")
        to = list((request.get("Destination") or {}).get("ToAddresses") or [])
        if not to or not request.get("FromEmailAddress"):
            raise ValueError("FromEmailAddress and Destination.ToAddresses are required")
        body = simple.get("Body") or {}
        message_id = f"0100{int(time.time() * 1000):013x}-{uuid.uuid4()}-000000"
        message = {
            "message_id": message_id,
            "received_at": datetime.now(UTC).isoformat(),
            "from": request["FromEmailAddress"],
            "to": to,
            "subject": (simple.get("Subject") or {}).get("Data", ""),
            "text": (body.get("Text") or {}).get("Data"),
            "html": (body.get("Html") or {}).get("Data"),
            "tags": {tag["Name"]: tag["Value"] for tag in request.get("EmailTags") or []},
            "configuration_set": request.get("ConfigurationSetName"),
            "events": [],
        }
        with self._lock:
            self._messages[message_id] = message
            while len(self._messages) > MAX_MESSAGES:
                self._messages.popitem(last=False)
        # SES publishes events only for messages sent with a configuration set that has an event destination.
        if message["configuration_set"] == self.configuration_set:
            due = time.monotonic() + EVENT_DELAY_SECONDS
            for kind in simulated_events(to[0]):
                self._events.put((due, message_id, kind))
        return message_id

    def _publish(self) -> None:
        while (item := self._events.get()) is not None:
            due, message_id, kind = item
            time.sleep(max(0.0, due - time.monotonic()))
            with self._lock:
                message = self._messages.get(message_id)
                if message is None:
                    continue
                request_tags = [{"Name": name, "Value": value} for name, value in message["tags"].items()]
                mail = ses_events.mail_object(
                    message_id,
                    source=message["from"],
                    to=message["to"],
                    subject=message["subject"],
                    tags=request_tags,
                    configuration_set=self.configuration_set,
                    sent_at=datetime.fromisoformat(message["received_at"]),
                )
            record = _record(kind, mail, message["to"][0])
            invoker = self._invoker
            event = ses_events.eventbridge_event(record, configuration_set=self.configuration_set)
            sent = invoker(event) if invoker else False
            with self._lock:
                message["events"].append(
                    {"type": kind, "at": datetime.now(UTC).isoformat(), "delivered_to_function": sent}
                )


def _record(kind: str, mail: dict[str, Any], address: str) -> dict[str, Any]:
    if kind == "Bounce":
        record = ses_events.bounce(mail, permanent=True)
        if address.lower().startswith("suppressionlist"):
            record["bounce"]["bounceSubType"] = "OnAccountSuppressionList"
        return record
    if kind == "Complaint":
        return ses_events.complaint(mail)
    return ses_events.delivery(mail)


class _QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 without an access log; ``body()`` reads the request's."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


def _handler(stand_in: SesStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(_QuietHandler):
        def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, code: str, message: str) -> None:
            # REST-JSON errors: the code in x-amzn-ErrorType, the message in the body (botocore reads both).
            self._answer(status, {"message": message}, {"x-amzn-ErrorType": code})

        def do_POST(self) -> None:
            raw = self.body()
            if self.path.split("?")[0] != SEND_EMAIL_PATH:
                self._error(404, "NotFoundException", f"the local SES answers only SendEmail, not {self.path}")
                return
            try:
                request = json.loads(raw or b"{}")
                message_id = stand_in.send_email(request)
            except (ValueError, KeyError, TypeError) as exc:
                self._error(400, "BadRequestException", str(exc))
                return
            self._answer(200, {"MessageId": message_id})

        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if path == MESSAGES_PATH:
                self._answer(200, {"messages": stand_in.messages()})
                return
            if path.startswith(MESSAGES_PATH + "/"):
                found = stand_in.message(path.removeprefix(MESSAGES_PATH + "/"))
                if found is None:
                    self._error(404, "NotFoundException", "no such message")
                else:
                    self._answer(200, found)
                return
            self._error(404, "NotFoundException", "unknown path")

    return Handler


# --------------------------------------------------------------------------------------------- SMS delivery logs

SMS_LOG_DELAY_SECONDS = 0.3
SMS_LOG_BATCH = 100  # log lines per invocation at most
_MESSAGE_ID = re.compile(rb"<MessageId>([^<]+)</MessageId>")


class SnsDeliveryLogHook(_EventServer):
    """SNS for the local stack: every call goes on to moto's SNS (which keeps the SMS), and each SMS published to a
    phone number is then reported as SNS's delivery status logging would, through a CloudWatch Logs subscription:
    a ``SUCCESS`` log line (https://docs.aws.amazon.com/sns/latest/dg/sms_stats_cloudwatch.html) in the event
    CloudWatch Logs hands a subscribed function (https://docs.aws.amazon.com/lambda/latest/dg/services-cloudwatchlogs.html),
    invoked asynchronously. The functions reach it through ``AWS_ENDPOINT_URL_SNS`` (SNS's Query protocol).
    """

    def __init__(self, moto_url: str, port: int = 0, host: str = HOST) -> None:
        if urllib.parse.urlsplit(moto_url).hostname not in (HOST, host):
            raise ValueError(f"the hook forwards to a local moto server only, not {moto_url}")
        self.moto_url = moto_url.rstrip("/")
        self.reported: list[str] = []  # message ids reported to the function
        super().__init__(_sns_handler(self), port, "sns-hook", host)

    def deliver_logs_to(self, invoker: Invoker | None) -> None:
        self._invoker = invoker

    def published(self, message_id: str) -> None:
        self._events.put((time.monotonic() + SMS_LOG_DELAY_SECONDS, message_id))

    def _publish(self) -> None:
        # CloudWatch Logs hands a subscribed function the log events in batches (``logEvents``, several lines in one
        # invocation: the Lambda guide's page above): every line due by the time the first one is, in one event.
        stopping = False
        while not stopping and (item := self._events.get()) is not None:
            due, message_id = item
            time.sleep(max(0.0, due - time.monotonic()))
            batch = [message_id]
            while len(batch) < SMS_LOG_BATCH:
                try:
                    following = self._events.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    stopping = True
                    break
                time.sleep(max(0.0, following[0] - time.monotonic()))
                batch.append(following[1])
            invoker = self._invoker
            lines = [ses_events.sms_log_line(message, success=True) for message in batch]
            if invoker is not None and invoker(ses_events.cloudwatch_logs_event(lines)):
                self.reported.extend(batch)


def _sns_handler(hook: SnsDeliveryLogHook) -> type[BaseHTTPRequestHandler]:
    from urllib.parse import parse_qs  # noqa: PLC0415

    class Handler(_QuietHandler):
        def do_POST(self) -> None:
            body = self.body()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            url = hook.moto_url + self.path
            forward = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
            try:
                with urllib.request.urlopen(forward, timeout=30) as answer:  # noqa: S310 - the local moto server
                    status, answer_headers, data = answer.status, dict(answer.headers.items()), answer.read()
            except urllib.error.HTTPError as error:
                status, answer_headers, data = error.code, dict(error.headers.items()), error.read()
            self.send_response(status)
            for name, value in answer_headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            form = parse_qs(body.decode("utf-8", "replace"))
            if status == 200 and form.get("Action") == ["Publish"] and form.get("PhoneNumber"):
                found = _MESSAGE_ID.search(data)
                if found:
                    hook.published(found.group(1).decode())

    return Handler
