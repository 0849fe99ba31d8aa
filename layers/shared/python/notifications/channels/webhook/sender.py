"""Generic webhook: a JSON POST signed per Standard Webhooks (https://www.standardwebhooks.com/, spec v1) to the URL
of the message's caller, kept in its own secret ``<prefix>/webhook/<caller id>`` (``notifications.destinations``):
``{"url": "https://...", "signing_keys": ["whsec_...", ...]}``.

Body: ``WebhookPayload`` (schema ``purchase.notification/v1``): the purchase, the customer's id and name and a
rendered summary, but no email address or phone number: the receiver is a system of the shop, not a way to reach
the customer. Headers:

- ``webhook-id``: the delivery key (notification, channel), the same on every retry: the receiver's idempotency
  key (also sent as ``Idempotency-Key``);
- ``webhook-timestamp``: Unix seconds when the request was signed;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>`` per signing
  key, separated by spaces. A key is ``whsec_`` + base64 of at least 32 random bytes; the HMAC key is those bytes.
  During a rotation the secret lists the new key and the old one, the receiver accepts either, and the old one is
  removed once every receiver knows the new one.

A receiver recomputes the HMAC over the raw body with each key it knows and compares in constant time, rejects a
timestamp more than 5 minutes off, and drops a ``webhook-id`` it already processed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, ConfigDict, Field, SecretStr

from notifications.channels import http
from notifications.channels.base import render
from notifications.channels.destination_sender import Destination, DestinationSender
from notifications.channels.webhook import WebhookSettings
from notifications.contracts.api import Purchase
from notifications.contracts.envelopes import ChannelMessage
from notifications.contracts.fields import Contract, Locale
from notifications.destinations import CallerDestinations
from notifications.registry import Channel
from notifications.settings import SenderSettings

WEBHOOK_SCHEMA = "purchase.notification/v1"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix, not a secret
MIN_KEY_BYTES = 32


def signing_key_bytes(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (at least 32 bytes); ValueError naming no part of it otherwise."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not secret.startswith(SECRET_PREFIX) or len(key) < MIN_KEY_BYTES:
        raise ValueError(f"must be '{SECRET_PREFIX}' followed by base64 of at least {MIN_KEY_BYTES} random bytes")
    return key


def _signing_key(secret: SecretStr) -> SecretStr:
    signing_key_bytes(secret.get_secret_value())
    return secret


class WebhookTarget(Destination):
    """The secret's content: where to post, and the keys to sign with (two while a new key is rolled out)."""

    signing_keys: Annotated[list[Annotated[SecretStr, AfterValidator(_signing_key)]], Field(min_length=1, max_length=3)]

    def keys(self) -> list[bytes]:
        return [signing_key_bytes(key.get_secret_value()) for key in self.signing_keys]


class WebhookCustomer(Contract):
    id: str
    name: str


class WebhookPayload(Contract):
    """The JSON body the receiver gets."""

    schema_: Literal["purchase.notification/v1"] = Field(default="purchase.notification/v1", alias="schema")
    notification_id: UUID
    correlation_id: str
    locale: Locale
    summary: str
    purchase: Purchase
    customer: WebhookCustomer

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @classmethod
    def of(cls, message: ChannelMessage) -> WebhookPayload:
        return cls(
            notification_id=message.notification_id,
            correlation_id=message.correlation_id,
            locale=message.locale,
            summary=render(WebhookSender.channel, message.locale, "summary.txt", message),
            purchase=message.purchase,
            customer=WebhookCustomer(id=message.customer.id, name=message.customer.name),
        )


def signature(keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per key over ``<id>.<timestamp>.<body>``."""
    content = f"{message_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode() for key in keys)


class WebhookSender(DestinationSender[WebhookTarget]):
    channel = Channel("webhook")
    destination = WebhookTarget

    def __init__(
        self,
        settings: SenderSettings,
        targets: CallerDestinations[WebhookTarget],
        post: http.Post = http.post,
        clock: Callable[[], float] = time.time,
        *,
        allow_private: bool = False,
    ) -> None:
        super().__init__(settings, targets, post, allow_private=allow_private)
        self._clock = clock

    def body(self, message: ChannelMessage) -> bytes:
        return WebhookPayload.of(message).model_dump_json(by_alias=True).encode()

    def headers(self, message: ChannelMessage, destination: WebhookTarget, body: bytes) -> dict[str, str]:
        """Signed now, with the destination's keys: a retry with a rotated key signs again."""
        timestamp, message_id = int(self._clock()), message.delivery_key
        return {
            ID_HEADER: message_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(destination.keys(), message_id, timestamp, body),
            IDEMPOTENCY_HEADER: message_id,
        }


def create(settings: SenderSettings, config: WebhookSettings) -> WebhookSender:
    return WebhookSender.create(settings, config)
