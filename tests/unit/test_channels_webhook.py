"""Webhook channel: the payload, the signature and idempotency headers, the secret (no sockets)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from devstack import aws_resources
from notifications.channels.http import HttpAnswer, raise_for_status
from notifications.channels.secret import CachedSecret
from notifications.channels.webhook.sender import WebhookSender, WebhookTarget
from notifications.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.models import Channel
from tests.channel_support import channel_message, sender_settings

NOW = 1_790_000_000
KEY = aws_resources.Endpoints().webhook_signing_key


class FakePost:
    def __init__(self, answer: HttpAnswer | None = None) -> None:
        self.answer = answer or HttpAnswer(204)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str], *, timeout: float, provider: str) -> HttpAnswer:
        self.calls.append({"url": url, "body": body, "headers": headers, "timeout": timeout})
        raise_for_status(provider, self.answer)
        return self.answer


def webhook_sender(session, post: FakePost) -> WebhookSender:
    secret = CachedSecret(
        SecretsProvider(boto3_client=session.client("secretsmanager")), aws_resources.WEBHOOK_SECRET, WebhookTarget
    )
    return WebhookSender(sender_settings(Channel.WEBHOOK), secret, post=post, clock=lambda: NOW + 0.7)


def test_payload_carries_the_purchase_but_no_contact_details(moto_aws):
    # Given a purchase by a customer with email and phone
    post = FakePost()
    message = channel_message(Channel.WEBHOOK)

    # When it is sent to the webhook
    webhook_sender(moto_aws, post).send(message)

    # Then the JSON body has the purchase, the customer's id and name and a summary, and no email or phone
    [call] = post.calls
    body = json.loads(call["body"])
    assert call["url"] == aws_resources.Endpoints().webhook_url
    assert body["schema"] == "purchase.notification/v1"
    assert body["notification_id"] == str(message.notification_id)
    assert body["correlation_id"] == "corr-test"
    assert body["customer"] == {"id": "c-42", "name": "Ada"}
    assert body["purchase"] == json.loads(message.purchase.model_dump_json())
    assert body["summary"] == f"Order {message.purchase.order_id} by Ada: 2 item(s), total 49.90 EUR"
    assert b"ada@example.com" not in call["body"] and b"+4915112345678" not in call["body"]


def test_headers_sign_the_exact_body_and_carry_the_delivery_key(moto_aws):
    # Given a sender whose clock reads NOW
    post = FakePost()
    message = channel_message(Channel.WEBHOOK)

    # When a message is sent
    webhook_sender(moto_aws, post).send(message)

    # Then the signature is HMAC-SHA256 over "<timestamp>.<body>" with the secret's key
    headers, body = post.calls[0]["headers"], post.calls[0]["body"]
    assert headers["Webhook-Timestamp"] == str(NOW)
    expected = hmac.new(KEY.encode(), f"{NOW}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["Webhook-Signature"] == f"v1={expected}"
    assert headers["Idempotency-Key"] == message.delivery_key == f"{message.notification_id}:webhook:-"


def test_a_retry_sends_the_same_body_and_idempotency_key(moto_aws):
    post = FakePost()
    sender = webhook_sender(moto_aws, post)
    message = channel_message(Channel.WEBHOOK)
    sender.send(message)
    sender.send(message)
    first, second = post.calls
    assert first["body"] == second["body"]
    assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"]


@pytest.mark.parametrize(("status", "error"), [(404, PermanentDeliveryError), (503, TransientDeliveryError)])
def test_answers_are_mapped_by_the_shared_rules(moto_aws, status, error):
    with pytest.raises(error):
        webhook_sender(moto_aws, FakePost(HttpAnswer(status))).send(channel_message(Channel.WEBHOOK))


@pytest.mark.parametrize(
    "secret",
    [
        {"url": "https://erp.example/hooks", "signing_key": "short"},
        {"url": "http://erp.example/hooks", "signing_key": "a-long-enough-signing-key"},
        {"url": "https://erp.example/hooks"},
    ],
    ids=["short-key", "plain-http", "no-key"],
)
def test_an_unusable_secret_sends_nothing(moto_aws, secret):
    # Given a secret with a weak key, a plain-http URL or no key
    moto_aws.client("secretsmanager").put_secret_value(
        SecretId=aws_resources.WEBHOOK_SECRET, SecretString=json.dumps(secret)
    )
    post = FakePost()

    # When a message is sent
    with pytest.raises(TransientDeliveryError) as caught:
        webhook_sender(moto_aws, post).send(channel_message(Channel.WEBHOOK))

    # Then nothing was posted and the reason does not reveal the secret
    assert post.calls == []
    assert "short" not in caught.value.reason and "erp.example" not in caught.value.reason
