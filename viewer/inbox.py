"""What each provider received, for the delivery viewer (``viewer.app``): one small port, several sources.

``ProviderInbox.received(notification, status)`` answers the messages a provider got for one notification. The
viewer asks :func:`provider_inbox`, the one place that says where each channel's messages are read from:

- email: the local SES v2 (``devstack.providers.SesStandIn``), which keeps each message as received (subject,
  text and HTML parts) and the SES events that followed it;
- SMS and mobile push: the moto server's messages (SNS ``Publish`` to a phone number, and to a platform endpoint,
  which moto keeps with the endpoint), read from its ``/moto-api/data.json`` only when a message the viewer is
  asked for is not cached yet;
- Slack and the webhook: the local receivers' records of every request (``devstack.receivers``), including the
  ones they answered with an error.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from devstack.receivers import Delivery, DeliveryReceiver
from notifications.channels.sms.sender import sms_encoding, sms_parts
from notifications.contracts.status_view import NotificationStatus


@dataclass(frozen=True)
class Tracked:
    """A notification the viewer saw on the requested topic (what it needs to find the provider's copies)."""

    key: str  # the status table's partition key: "<caller>/<id>" (or the bare id of a v1 envelope)
    id: str
    order_id: str
    customer: str
    channels: tuple[str, ...]
    accepted_at: str  # ISO-8601
    correlation_id: str
    locale: str


@dataclass(frozen=True)
class ProviderMessage:
    """One message as a provider received it; the fields that apply to its channel are set."""

    channel: str
    provider: str
    message_id: str | None = None
    to: str | None = None
    subject: str | None = None
    html: str | None = None  # email: the HTML part
    text: str | None = None  # email: the text part; SMS: the text sent
    sms_parts: int | None = None
    sms_encoding: str | None = None
    payload: Any = None  # Slack: the Block Kit payload; webhook: the JSON body
    answered: int | None = None  # Slack/webhook: the HTTP status the receiver answered (0: connection dropped)
    signature_ok: bool | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


class ProviderInbox(Protocol):
    """Port: what the providers received for one notification."""

    def received(self, notification: Tracked, status: NotificationStatus | None) -> list[ProviderMessage]: ...


def _provider_ids(status: NotificationStatus | None, channel: str) -> list[str]:
    if status is None:
        return []
    return [c.provider_message_id for c in status.channels if c.channel == channel and c.provider_message_id]


class SesInbox:
    """Email as the local SES v2 received it, found by the status' provider message id (the SES message id)."""

    def __init__(self, ses: Any) -> None:
        self._ses = ses  # devstack.providers.SesStandIn: message(message_id) -> dict | None

    def received(self, notification: Tracked, status: NotificationStatus | None) -> list[ProviderMessage]:
        found = []
        for message_id in _provider_ids(status, "email"):
            message = self._ses.message(message_id)
            if message is None:
                continue
            events = tuple(f"SES event {e.get('type')} at {e.get('at')}" for e in message.get("events") or [])
            found.append(
                ProviderMessage(
                    channel="email",
                    provider="SES v2 (local)",
                    message_id=message_id,
                    to=", ".join(message.get("to") or []),
                    subject=message.get("subject"),
                    html=message.get("html"),
                    text=message.get("text"),
                    notes=events,
                )
            )
        return found


class MotoInbox:
    """SMS and push (SNS) as the moto server recorded them, found by the status' provider message id.

    A message once seen is kept (what was sent does not change); moto is asked again at most every
    ``refetch_seconds`` and only while a wanted message is missing."""

    def __init__(self, aws_endpoint: str, *, refetch_seconds: float = 2.0) -> None:
        self._endpoint = aws_endpoint
        self._refetch = refetch_seconds
        self._lock = threading.Lock()
        self._messages: dict[str, ProviderMessage] = {}
        self._fetched_at = float("-inf")

    def received(self, notification: Tracked, status: NotificationStatus | None) -> list[ProviderMessage]:
        wanted = _provider_ids(status, "sms") + _provider_ids(status, "push")
        with self._lock:
            missing = [m for m in wanted if m not in self._messages]
            if missing and time.monotonic() - self._fetched_at >= self._refetch:
                self._fetch()
            return [self._messages[m] for m in wanted if m in self._messages]

    def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        with urllib.request.urlopen(f"{self._endpoint}/moto-api/data.json", timeout=10) as response:  # noqa: S310
            data = json.loads(response.read())
        for sms in data.get("sns", {}).get("SMS", []):
            text = sms.get("message") or ""
            self._messages[sms["message_id"]] = ProviderMessage(
                channel="sms",
                provider="SNS (moto server)",
                message_id=sms["message_id"],
                to=sms.get("phone_number"),
                text=text,
                sms_parts=sms_parts(text),
                sms_encoding=str(sms_encoding(text)),
            )
        for endpoint in data.get("sns", {}).get("PlatformEndpoint", []):
            for message_id, message in (endpoint.get("messages") or {}).items():
                self._messages[message_id] = _push_message(message_id, endpoint.get("arn"), message)


def _push_message(message_id: str, endpoint_arn: str | None, message: str) -> ProviderMessage:
    """A push as SNS took it: the JSON message structure, each platform's payload (a JSON string) decoded."""
    structured = _json(message.encode())
    if not isinstance(structured, dict):
        return ProviderMessage(
            channel="push", provider=_PUSH_PROVIDER, message_id=message_id, to=endpoint_arn, text=message
        )
    payload = {key: _json(value.encode()) if key != "default" else value for key, value in structured.items()}
    alert = next((p["aps"]["alert"] for p in payload.values() if isinstance(p, dict) and "aps" in p), None)
    fcm = next(
        (p["fcmV1Message"]["message"] for p in payload.values() if isinstance(p, dict) and "fcmV1Message" in p), None
    )
    shown = alert or (fcm or {}).get("notification") or {}
    return ProviderMessage(
        channel="push",
        provider=_PUSH_PROVIDER,
        message_id=message_id,
        to=endpoint_arn,
        subject=shown.get("title"),
        text=structured.get("default"),
        payload=payload,
    )


_PUSH_PROVIDER = "SNS mobile push (moto server)"


class ReceiverInbox:
    """Slack and webhook requests as the local receivers recorded them (every attempt, with what they answered)."""

    def __init__(self, slack: DeliveryReceiver | None, webhook: DeliveryReceiver | None) -> None:
        self._slack = slack
        self._webhook = webhook

    def received(self, notification: Tracked, status: NotificationStatus | None) -> list[ProviderMessage]:
        found: list[ProviderMessage] = []
        if self._slack is not None and "slack" in notification.channels:
            # The message's context line names the notification (the slack templates' context.mrkdwn).
            found.extend(
                _from_receiver("slack", "Slack incoming webhook (local receiver)", delivery)
                for delivery in self._slack.deliveries()
                if notification.id in delivery.body.decode("utf-8", "replace")
            )
        if self._webhook is not None and "webhook" in notification.channels:
            # webhook-id is the delivery key: "[<caller>:]<notification id>:webhook:-"
            found.extend(
                _from_receiver("webhook", "webhook endpoint (local receiver)", delivery)
                for delivery in self._webhook.deliveries()
                if notification.id in delivery.headers.get("webhook-id", "")
            )
        return found

    def per_destination(self) -> list[Destination]:
        """What each destination received, by path: each local shop's Slack and webhook is a path of its own
        (``/slack/<shop>``, ``/webhook/<shop>``: ``devstack.aws_resources``)."""
        found: dict[tuple[str, str], list[Delivery]] = {}
        for channel, receiver in (("slack", self._slack), ("webhook", self._webhook)):
            for delivery in receiver.deliveries() if receiver is not None else ():
                found.setdefault((channel, delivery.path), []).append(delivery)
        return [
            Destination(
                caller=path.rstrip("/").rpartition("/")[2],
                channel=channel,
                path=path,
                requests=len(deliveries),
                accepted=sum(1 for d in deliveries if d.accepted and not d.replay),
                refused=sum(1 for d in deliveries if not d.accepted),
            )
            for (channel, path), deliveries in sorted(found.items(), key=lambda item: (item[0][1], item[0][0]))
        ]


@dataclass(frozen=True)
class Destination:
    """What one caller's destination (a receiver path) got: requests, new deliveries accepted, refusals."""

    caller: str
    channel: str
    path: str
    requests: int
    accepted: int
    refused: int


def _from_receiver(channel: str, provider: str, delivery: Delivery) -> ProviderMessage:
    return ProviderMessage(
        channel=channel,
        provider=provider,
        to=delivery.path,  # the caller's own destination
        message_id=delivery.headers.get("webhook-id"),
        payload=_json(delivery.body),
        answered=delivery.status,
        signature_ok=delivery.signature_ok,
        notes=("a repeat the receiver answered 2xx and ignored",) if delivery.replay else (),
    )


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


class Inboxes:
    """Several inboxes asked in turn."""

    def __init__(self, inboxes: Sequence[ProviderInbox]) -> None:
        self._inboxes = list(inboxes)

    def received(self, notification: Tracked, status: NotificationStatus | None) -> list[ProviderMessage]:
        return [message for inbox in self._inboxes for message in inbox.received(notification, status)]


def provider_inbox(ses: Any, aws_endpoint: str, receivers: ReceiverInbox) -> ProviderInbox:
    """Where the viewer reads what each provider received (the one place to change a source)."""
    return Inboxes([SesInbox(ses), MotoInbox(aws_endpoint), receivers])
