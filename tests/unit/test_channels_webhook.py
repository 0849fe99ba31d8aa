"""Webhook channel: the payload, the signature and idempotency headers, the secret (no sockets)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from devstack import aws_resources
from notifications.channels.http import HttpAnswer, raise_for_status
from notifications.channels.webhook.sender import WebhookSender, WebhookTarget
from notifications.destinations import CallerDestinations
from notifications.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.registry import Channel
from tests.channel_support import build_sender, channel_message, sender_settings

NOW = 1_790_000_000
KEY = aws_resources.Endpoints.signing_key()


class FakePost:
    def __init__(self, answer: HttpAnswer | None = None) -> None:
        self.answer = answer or HttpAnswer(204)
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str], *, timeout: float, provider: str, allow_private: bool
    ) -> HttpAnswer:
        self.calls.append(
            {"url": url, "body": body, "headers": headers, "timeout": timeout, "allow_private": allow_private}
        )
        raise_for_status(provider, self.answer)
        return self.answer


def webhook_sender(session, post: FakePost) -> WebhookSender:
    client = session.client("secretsmanager")
    targets = CallerDestinations(
        aws_resources.DESTINATION_PREFIX, "webhook", WebhookTarget, lambda: SecretsProvider(boto3_client=client)
    )
    return WebhookSender(sender_settings(Channel.WEBHOOK), targets, post=post, clock=lambda: NOW + 0.7)


def test_payload_carries_the_purchase_but_no_contact_details(moto_aws):
    # Given a purchase by a customer with email and phone
    post = FakePost()
    message = channel_message(Channel.WEBHOOK)

    # When it is sent to the webhook
    webhook_sender(moto_aws, post).send(message)

    # Then the JSON body has the purchase, the customer's id and name and a summary, and no email or phone
    [call] = post.calls
    body = json.loads(call["body"])
    assert call["url"] == aws_resources.Endpoints().webhook_url()
    assert body["schema"] == "purchase.notification/v1"
    assert body["notification_id"] == str(message.notification_id)
    assert body["correlation_id"] == "corr-test"
    assert body["customer"] == {"id": "c-42", "name": "Ada"}
    assert body["purchase"] == json.loads(message.purchase.model_dump_json())
    assert body["summary"] == f"Order {message.purchase.order_id} by Ada: 2 item(s), total 49.90 EUR"
    assert b"ada@example.com" not in call["body"] and b"+4915112345678" not in call["body"]


def expected_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks v1: base64 HMAC-SHA256 with the secret's decoded bytes over "<id>.<timestamp>.<body>"."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_headers_sign_id_timestamp_and_exact_body_per_standard_webhooks(moto_aws):
    # Given a sender whose clock reads NOW
    post = FakePost()
    message = channel_message(Channel.WEBHOOK)

    # When a message is sent
    webhook_sender(moto_aws, post).send(message)

    # Then webhook-id is the delivery key, and the signature covers "<id>.<timestamp>.<body>" with the secret's key
    headers, body = post.calls[0]["headers"], post.calls[0]["body"]
    assert headers["webhook-id"] == message.delivery_key == f"{message.caller}:{message.notification_id}:webhook:-"
    assert headers["webhook-timestamp"] == str(NOW)
    assert headers["webhook-signature"] == expected_signature(KEY, message.delivery_key, NOW, body)
    assert headers["Idempotency-Key"] == message.delivery_key


def test_during_a_rotation_every_key_signs(moto_aws):
    # Given a secret listing a new key and the old one
    new = "whsec_" + base64.b64encode(bytes(range(32, 64))).decode()
    moto_aws.client("secretsmanager").put_secret_value(
        SecretId=aws_resources.destination_secret("webhook"),
        SecretString=json.dumps({"url": "https://erp.example/hooks", "signing_keys": [new, KEY]}),
    )
    post = FakePost()
    message = channel_message(Channel.WEBHOOK)

    # When a message is sent
    webhook_sender(moto_aws, post).send(message)

    # Then the header carries one v1 signature per key, space-separated, in the secret's order
    headers, body = post.calls[0]["headers"], post.calls[0]["body"]
    assert headers["webhook-signature"].split(" ") == [
        expected_signature(new, message.delivery_key, NOW, body),
        expected_signature(KEY, message.delivery_key, NOW, body),
    ]


@pytest.mark.parametrize(("environment", "allowed"), [("dev", True), ("staging", False), ("prod", False)])
def test_only_dev_may_post_to_private_targets(moto_aws, environment, allowed):
    # Given the webhook sender as its function builds it in each environment
    post = FakePost()
    sender = build_sender(Channel.WEBHOOK, ENVIRONMENT=environment)
    sender._post = post  # the HTTP call only; everything else as built

    # When a message is sent, then the environment decides whether loopback/private targets are allowed
    sender.send(channel_message(Channel.WEBHOOK))
    assert post.calls[0]["allow_private"] is allowed


def test_a_retry_sends_the_same_body_and_idempotency_key(moto_aws):
    post = FakePost()
    sender = webhook_sender(moto_aws, post)
    message = channel_message(Channel.WEBHOOK)
    sender.send(message)
    sender.send(message)
    first, second = post.calls
    assert first["body"] == second["body"]
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]


@pytest.mark.parametrize(("status", "error"), [(404, PermanentDeliveryError), (503, TransientDeliveryError)])
def test_answers_are_mapped_by_the_shared_rules(moto_aws, status, error):
    with pytest.raises(error):
        webhook_sender(moto_aws, FakePost(HttpAnswer(status))).send(channel_message(Channel.WEBHOOK))


SHORT_KEY = "whsec_" + base64.b64encode(b"x" * 31).decode()


@pytest.mark.parametrize(
    "secret",
    [
        {"url": "https://erp.example/hooks", "signing_keys": [SHORT_KEY]},
        {"url": "https://erp.example/hooks", "signing_keys": ["a-long-enough-but-unprefixed-signing-key-0123456789"]},
        {"url": "https://erp.example/hooks", "signing_keys": ["whsec_not base64!"]},
        {"url": "https://erp.example/hooks", "signing_keys": []},
        {"url": "https://erp.example/hooks", "signing_key": KEY},
        {"url": "http://erp.example/hooks", "signing_keys": [KEY]},
    ],
    ids=["31-byte-key", "no-whsec-prefix", "not-base64", "no-keys", "old-single-key-field", "plain-http"],
)
def test_an_unusable_secret_sends_nothing(moto_aws, secret):
    # Given a secret with a weak or malformed key, no key, or a plain-http URL
    moto_aws.client("secretsmanager").put_secret_value(
        SecretId=aws_resources.destination_secret("webhook"), SecretString=json.dumps(secret)
    )
    post = FakePost()

    # When a message is sent
    with pytest.raises(TransientDeliveryError) as caught:
        webhook_sender(moto_aws, post).send(channel_message(Channel.WEBHOOK))

    # Then nothing was posted and the reason does not reveal the secret
    assert post.calls == []
    assert "erp.example" not in caught.value.reason
    for key in secret.get("signing_keys", []):
        assert key not in caught.value.reason
