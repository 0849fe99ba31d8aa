"""Slack channel over a real socket: a local receiver plays Slack, moto holds the secret."""

from __future__ import annotations

import json

import pytest

from devstack import aws_resources
from devstack.ports import free_port
from devstack.receivers import DeliveryReceiver
from notifications.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.registry import Channel
from tests.channel_support import PERMANENT_STATUSES, TRANSIENT_STATUSES, build_sender, channel_message


@pytest.fixture
def slack(moto_aws):
    """A receiver on 127.0.0.1 whose /slack URL is the Slack secret."""
    with DeliveryReceiver() as receiver:
        moto_aws.client("secretsmanager").put_secret_value(
            SecretId=aws_resources.destination_secret("slack"), SecretString=json.dumps({"url": receiver.url("/slack")})
        )
        yield receiver


def test_a_message_is_posted_as_block_kit(slack):
    # Given the Slack sender as the sender function builds it
    sender = build_sender(Channel.SLACK)
    message = channel_message(Channel.SLACK, customer={"id": "c-9", "name": "<!here> Mallory"})

    # When a message is sent
    receipt = sender.send(message)

    # Then Slack received one JSON Block Kit message, escaped, and answered with its request id
    [delivery] = slack.accepted("/slack")
    assert delivery.headers["content-type"].startswith("application/json")
    body = delivery.json()
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "context"]
    assert message.purchase.order_id in body["blocks"][0]["text"]["text"]
    assert "&lt;!here&gt; Mallory" in body["blocks"][1]["text"]["text"]
    assert b"<!here>" not in delivery.body
    assert receipt.provider_message_id == "req-1"


@pytest.mark.parametrize("status", PERMANENT_STATUSES)
def test_client_errors_are_permanent(slack, status):
    # Given Slack refusing the next request
    slack.fail_next(1, status=status)

    # When a message is sent
    with pytest.raises(PermanentDeliveryError) as caught:
        build_sender(Channel.SLACK).send(channel_message(Channel.SLACK))

    # Then it is permanent and was tried once (no redirect followed)
    assert caught.value.provider_code == f"HTTP {status}"
    assert len(slack.deliveries()) == 1


@pytest.mark.parametrize("status", TRANSIENT_STATUSES)
def test_throttling_and_server_errors_are_transient_with_retry_after(slack, status):
    # Given Slack answering with a status worth retrying and Retry-After: 12
    slack.fail_next(1, status=status, retry_after=12)

    # When a message is sent
    with pytest.raises(TransientDeliveryError) as caught:
        build_sender(Channel.SLACK).send(channel_message(Channel.SLACK))

    # Then it is transient with the wait
    assert caught.value.provider_code == f"HTTP {status}"
    assert caught.value.retry_after == 12.0


def test_a_dropped_connection_is_transient(slack):
    slack.drop_next(1)
    with pytest.raises(TransientDeliveryError) as caught:
        build_sender(Channel.SLACK).send(channel_message(Channel.SLACK))
    assert caught.value.provider_code == "network"


def test_a_slow_answer_times_out_as_transient(slack):
    # Given a provider timeout of 0.2 s and Slack holding the answer for longer
    slack.answer_late(1, seconds=5)
    sender = build_sender(Channel.SLACK, PROVIDER_TIMEOUT_SECONDS="0.2")

    # When a message is sent
    with pytest.raises(TransientDeliveryError) as caught:
        sender.send(channel_message(Channel.SLACK))

    # Then it is a transient network failure
    assert caught.value.provider_code == "network"
    assert "Timeout" in caught.value.reason or "timed out" in caught.value.reason


def test_nobody_listening_is_transient(moto_aws):
    # Given a Slack URL on a port nobody listens on
    port = free_port()
    moto_aws.client("secretsmanager").put_secret_value(
        SecretId=aws_resources.destination_secret("slack"),
        SecretString=json.dumps({"url": f"http://127.0.0.1:{port}/slack"}),
    )

    # When a message is sent
    with pytest.raises(TransientDeliveryError) as caught:
        build_sender(Channel.SLACK).send(channel_message(Channel.SLACK))

    # Then it is transient
    assert caught.value.provider_code == "network"
