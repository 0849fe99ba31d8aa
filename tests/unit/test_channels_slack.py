"""Slack channel: the Block Kit message, the cached secret and how answers are mapped (no sockets)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from devstack import aws_resources
from notifications.channels.http import HttpAnswer, raise_for_status
from notifications.channels.slack.sender import SlackSender, SlackTarget, slack_message
from notifications.destinations import CallerDestinations
from notifications.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.registry import Channel
from tests.channel_support import build_sender, channel_message, sender_settings


class FakePost:
    """``http.post`` in memory: answers per URL (200 by default), classified by the real rules."""

    def __init__(self, answers: dict[str, HttpAnswer] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str], *, timeout: float, provider: str, allow_private: bool
    ) -> HttpAnswer:
        self.calls.append({"url": url, "body": body, "headers": headers, "timeout": timeout})
        answer = self.answers.get(url, HttpAnswer(200, {"x-slack-req-id": "req-1"}, b"ok"))
        raise_for_status(provider, answer)
        return answer


def counting_reads(session) -> tuple[Any, list[int]]:
    client = session.client("secretsmanager")
    reads: list[int] = []
    client.meta.events.register("before-call.secrets-manager.GetSecretValue", lambda **_: reads.append(1))
    return client, reads


def slack_sender(session, post: FakePost, **env: str) -> tuple[SlackSender, list[int]]:
    client, reads = counting_reads(session)
    targets = CallerDestinations(
        aws_resources.DESTINATION_PREFIX, "slack", SlackTarget, lambda: SecretsProvider(boto3_client=client)
    )
    return SlackSender(sender_settings(Channel.SLACK, **env), targets, post=post), reads


def test_message_is_block_kit_with_header_body_and_fallback_text():
    # Given the sample purchase
    message = channel_message(Channel.SLACK)

    # When the Slack payload is built
    payload = slack_message(message)

    # Then it has a plain-text header, a mrkdwn body listing the item, a context line and a fallback text
    header, section, context = payload["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": f"New order {message.purchase.order_id}: 49.90 EUR", "emoji": True},
    }
    assert section["text"]["type"] == "mrkdwn"
    assert "2 × Coffee beans (SKU-1)" in section["text"]["text"]  # noqa: RUF001 - the template's multiplication sign
    assert str(message.notification_id) in context["elements"][0]["text"]
    assert payload["text"] == header["text"]["text"]
    assert "ada@example.com" not in json.dumps(payload) and "+4915112345678" not in json.dumps(payload)


def test_a_long_header_is_cut_to_slacks_limit():
    message = channel_message(
        Channel.SLACK,
        purchase={
            "order_id": "A" * 200,
            "purchased_at": "2026-11-21T10:00:00Z",
            "currency": "EUR",
            "total": "1.00",
            "items": [{"sku": "S", "name": "N", "quantity": 1, "unit_price": "1.00"}],
        },
    )
    header = slack_message(message)["blocks"][0]["text"]["text"]
    assert len(header) == 150 and header.endswith("…")


def test_send_posts_the_message_to_the_secret_url_with_the_configured_timeout(moto_aws):
    # Given the Slack secret in Secrets Manager and a provider timeout of 2.5 s
    post = FakePost()
    sender, _ = slack_sender(moto_aws, post, PROVIDER_TIMEOUT_SECONDS="2.5")
    message = channel_message(Channel.SLACK, customer={"id": "c-1", "name": "<!channel> Eve"})

    # When the message is sent
    receipt = sender.send(message)

    # Then one POST went to the URL from the secret, escaped, and Slack's request id is the receipt
    [call] = post.calls
    assert call["url"] == aws_resources.Endpoints().slack_url()
    assert call["timeout"] == 2.5
    body = json.loads(call["body"])
    assert "&lt;!channel&gt; Eve" in body["blocks"][1]["text"]["text"]
    assert "<!channel>" not in call["body"].decode()
    assert receipt.provider_message_id == "req-1"


def test_the_secret_is_read_once_for_many_sends(moto_aws):
    # Given a sender
    post = FakePost()
    sender, reads = slack_sender(moto_aws, post)

    # When three messages are sent
    for _ in range(3):
        sender.send(channel_message(Channel.SLACK))

    # Then Secrets Manager was asked once
    assert len(post.calls) == 3
    assert len(reads) == 1


def test_a_rotated_url_is_picked_up_when_the_old_one_is_gone(moto_aws):
    # Given a sender that has delivered at the old URL (cached), Slack now answering 410 there, and a rotated secret
    old = aws_resources.Endpoints().slack_url()
    new = "https://hooks.slack.example/services/new"
    post = FakePost()
    sender, reads = slack_sender(moto_aws, post)
    sender.send(channel_message(Channel.SLACK))
    post.answers[old] = HttpAnswer(410, body=b"channel_is_archived")
    moto_aws.client("secretsmanager").put_secret_value(
        SecretId=aws_resources.destination_secret("slack"), SecretString=json.dumps({"url": new})
    )

    # When the next message is sent
    sender.send(channel_message(Channel.SLACK))

    # Then it was refused at the old URL and delivered at the new one, after one fresh read
    assert [c["url"] for c in post.calls] == [old, old, new]
    assert len(reads) == 2


def test_a_permanent_refusal_with_an_unchanged_secret_is_permanent(moto_aws):
    # Given Slack answering 404 at the configured URL
    url = aws_resources.Endpoints().slack_url()
    post = FakePost({url: HttpAnswer(404, body=b"channel_not_found")})
    sender, _ = slack_sender(moto_aws, post)

    # When a message is sent
    with pytest.raises(PermanentDeliveryError) as caught:
        sender.send(channel_message(Channel.SLACK))

    # Then it is permanent, posted once, with Slack's reason
    assert "channel_not_found" in caught.value.reason
    assert len(post.calls) == 1


def test_throttling_is_transient_with_the_wait(moto_aws):
    url = aws_resources.Endpoints().slack_url()
    sender, _ = slack_sender(moto_aws, FakePost({url: HttpAnswer(429, {"retry-after": "30"})}))
    with pytest.raises(TransientDeliveryError) as caught:
        sender.send(channel_message(Channel.SLACK))
    assert caught.value.retry_after == 30.0


@pytest.mark.parametrize(
    "secret", [{"url": "http://hooks.example.com/plain-http"}, {"hook": "https://x.example"}, "not json"]
)
def test_an_unusable_secret_is_transient_and_not_logged(moto_aws, secret):
    # Given a secret that is not a usable Slack target
    value = secret if isinstance(secret, str) else json.dumps(secret)
    moto_aws.client("secretsmanager").put_secret_value(
        SecretId=aws_resources.destination_secret("slack"), SecretString=value
    )
    post = FakePost()
    sender, _ = slack_sender(moto_aws, post)

    # When a message is sent
    with pytest.raises(TransientDeliveryError) as caught:
        sender.send(channel_message(Channel.SLACK))

    # Then nothing was posted, and the reason names the problem but not the secret's value
    assert post.calls == []
    assert caught.value.provider_code == "secret"
    assert "example" not in caught.value.reason


def test_the_registry_builds_the_slack_sender(moto_aws):
    assert isinstance(build_sender(Channel.SLACK), SlackSender)
