"""Generic webhook: a signed JSON POST to the URL kept in Secrets Manager (``{"url", "signing_key"}``).

Body: ``WebhookPayload`` (schema ``purchase.notification/v1``): the purchase, the customer's id and name and a
rendered summary, but no email address or phone number: the receiver is a system of the shop, not a way to reach
the customer. Headers:

- ``Webhook-Timestamp``: Unix seconds when the request was signed;
- ``Webhook-Signature: v1=<hex HMAC-SHA256(signing_key, "<timestamp>.<body>")>``;
- ``Idempotency-Key``: the delivery key, the same on every retry, so the receiver can drop duplicates.

A receiver verifies by recomputing the HMAC over the raw body and comparing in constant time, and rejects old
timestamps (e.g. more than 5 minutes) against replay.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Annotated, Literal
from uuid import UUID

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

from notifications import aws
from notifications.channels import http
from notifications.channels.base import Receipt, render
from notifications.channels.secret import CachedSecret
from notifications.channels.webhook import WebhookSettings
from notifications.models import Channel, ChannelMessage, Contract, Locale, Purchase
from notifications.settings import SenderSettings

WEBHOOK_SCHEMA = "purchase.notification/v1"
TIMESTAMP_HEADER = "Webhook-Timestamp"
SIGNATURE_HEADER = "Webhook-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class WebhookTarget(BaseModel):
    """The secret's content."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    url: Annotated[str, AfterValidator(http.check_url)]
    signing_key: Annotated[SecretStr, Field(min_length=16)]


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


def signature(signing_key: str, timestamp: int, body: bytes) -> str:
    """The ``Webhook-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(signing_key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


class WebhookSender:
    channel = Channel("webhook")

    def __init__(
        self,
        settings: SenderSettings,
        target: CachedSecret[WebhookTarget],
        post: http.Post = http.post,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._timeout = settings.provider_timeout_seconds
        self._target = target
        self._post = post
        self._clock = clock

    def send(self, message: ChannelMessage) -> Receipt:
        body = WebhookPayload.of(message).model_dump_json(by_alias=True).encode()

        def deliver(target: WebhookTarget) -> Receipt:
            timestamp = int(self._clock())
            headers = {
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: signature(target.signing_key.get_secret_value(), timestamp, body),
                IDEMPOTENCY_HEADER: message.delivery_key,
            }
            self._post(target.url, body, headers, timeout=self._timeout, provider="webhook")
            return Receipt(provider_message_id=None)

        return self._target.call(deliver)


def create(settings: SenderSettings, config: WebhookSettings) -> WebhookSender:
    source = SecretsProvider(boto3_client=aws.client("secretsmanager"))
    return WebhookSender(settings, CachedSecret(source, config.webhook_secret_id, WebhookTarget))
