"""Webhook channel over a real socket: a local receiver verifies the signature on its own, moto holds the secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from devstack import aws_resources
from devstack.receivers import DeliveryReceiver
from notifications.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.registry import Channel
from tests.channel_support import PERMANENT_STATUSES, TRANSIENT_STATUSES, build_sender, channel_message

KEY = "whsec_" + base64.b64encode(b"integration signing key, 32 bytes").decode()
OTHER_KEY = "whsec_" + base64.b64encode(b"another key that nobody shares!!").decode()


def use_secret(session, url: str, *keys: str) -> None:
    session.client("secretsmanager").put_secret_value(
        SecretId=aws_resources.destination_secret("webhook"),
        SecretString=json.dumps({"url": url, "signing_keys": list(keys or (KEY,))}),
    )


@pytest.fixture
def webhook(moto_aws):
    """A receiver on 127.0.0.1 that knows the signing key; its /webhook URL is the webhook secret."""
    with DeliveryReceiver(signing_key=KEY) as receiver:
        use_secret(moto_aws, receiver.url("/webhook"))
        yield receiver


def test_a_signed_json_post_arrives_and_verifies(webhook):
    # Given the webhook sender as the sender function builds it
    sender = build_sender(Channel.WEBHOOK)
    message = channel_message(Channel.WEBHOOK)

    # When a message is sent
    sender.send(message)

    # Then the receiver got one JSON POST whose signature it verified itself
    [delivery] = webhook.accepted("/webhook")
    assert delivery.signature_ok is True
    assert delivery.headers["content-type"].startswith("application/json")
    assert delivery.headers["webhook-id"] == delivery.headers["idempotency-key"] == message.delivery_key
    body = delivery.json()
    assert body["notification_id"] == str(message.notification_id)
    assert body["purchase"]["order_id"] == message.purchase.order_id
    assert "email" not in body["customer"] and "phone" not in body["customer"]

    # And the signature is base64 HMAC-SHA256 over "<id>.<timestamp>.<raw body>" (Standard Webhooks v1)
    signed = f"{message.delivery_key}.{delivery.headers['webhook-timestamp']}.".encode() + delivery.body
    digest = hmac.new(base64.b64decode(KEY.removeprefix("whsec_")), signed, hashlib.sha256).digest()
    assert delivery.headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()


def test_a_wrong_signing_key_is_refused_by_the_receiver_and_permanent(webhook, moto_aws):
    # Given a secret whose key the receiver does not share
    use_secret(moto_aws, webhook.url("/webhook"), OTHER_KEY)

    # When a message is sent
    with pytest.raises(PermanentDeliveryError) as caught:
        build_sender(Channel.WEBHOOK).send(channel_message(Channel.WEBHOOK))

    # Then the receiver rejected the signature
    assert caught.value.provider_code == "HTTP 401"
    [delivery] = webhook.deliveries()
    assert delivery.signature_ok is False


@pytest.mark.parametrize("status", PERMANENT_STATUSES)
def test_client_errors_are_permanent(webhook, status):
    webhook.fail_next(1, status=status)
    with pytest.raises(PermanentDeliveryError) as caught:
        build_sender(Channel.WEBHOOK).send(channel_message(Channel.WEBHOOK))
    assert caught.value.provider_code == f"HTTP {status}"
    assert len(webhook.deliveries()) == 1


@pytest.mark.parametrize("status", TRANSIENT_STATUSES)
def test_throttling_and_server_errors_are_transient_with_retry_after(webhook, status):
    webhook.fail_next(1, status=status, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    with pytest.raises(TransientDeliveryError) as caught:
        build_sender(Channel.WEBHOOK).send(channel_message(Channel.WEBHOOK))
    assert caught.value.provider_code == f"HTTP {status}"
    assert caught.value.retry_after == 0.0  # a date in the past: retry now


def test_a_dropped_connection_and_a_timeout_are_transient(webhook):
    sender = build_sender(Channel.WEBHOOK, PROVIDER_TIMEOUT_SECONDS="0.2")
    webhook.drop_next(1)
    with pytest.raises(TransientDeliveryError):
        sender.send(channel_message(Channel.WEBHOOK))
    webhook.answer_late(1, seconds=5)
    with pytest.raises(TransientDeliveryError):
        sender.send(channel_message(Channel.WEBHOOK))


def test_a_plain_http_url_elsewhere_is_refused_before_sending(webhook, moto_aws):
    # Given a secret pointing at plain http on another host
    use_secret(moto_aws, "http://partner.example/hooks")

    # When a message is sent
    with pytest.raises(TransientDeliveryError) as caught:
        build_sender(Channel.WEBHOOK).send(channel_message(Channel.WEBHOOK))

    # Then the secret is reported unusable and nothing was sent anywhere
    assert caught.value.provider_code == "secret"
    assert webhook.deliveries() == []


def test_failures_then_recovery_deliver_once_per_retry_with_the_same_key(webhook):
    # Given a receiver failing most requests (seeded, so the same attempts fail on every run)
    webhook.fail_fraction(0.85, status=503)
    sender = build_sender(Channel.WEBHOOK)
    message = channel_message(Channel.WEBHOOK)

    # When the sender retries until it gets through (as the event-source mapping would)
    for _ in range(20):
        try:
            sender.send(message)
            break
        except TransientDeliveryError:
            continue

    # Then after some failures exactly one request was accepted, and every attempt carried the same idempotency key
    assert len(webhook.deliveries()) > 1
    assert len(webhook.accepted()) == 1
    assert {d.headers["webhook-id"] for d in webhook.deliveries()} == {message.delivery_key}
