"""Each caller's own Slack and webhook destinations: the senders read only the message's caller's secret, ingest
refuses (422) a channel the caller has no destination for; moto's Secrets Manager in process (no sockets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from devstack import aws_resources
from notifications.channels.http import HttpAnswer
from notifications.channels.slack.sender import SlackSender, SlackTarget
from notifications.channels.webhook.sender import WebhookSender, WebhookTarget
from notifications.destinations import CallerDestinations, SecretsManagerDirectory, secret_name
from notifications.errors import PermanentDeliveryError
from notifications.registry import Channel, address_of
from notifications.runtime import ingest
from tests.channel_support import channel_message, sender_settings
from tests.security.callers import new_caller, post
from tests.support import MemoryPublisher, caller_id, sample_request

OTHER = "other-shop"
ROOT = Path(__file__).resolve().parents[2]


class FakePost:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str], *, timeout: float, provider: str, allow_private: bool
    ) -> HttpAnswer:
        self.calls.append({"url": url, "body": body, "headers": headers})
        return HttpAnswer(200, {}, b"ok")


def reads_of(session) -> tuple[Any, list[str]]:
    """A Secrets Manager client and the SecretId of every GetSecretValue it makes."""
    client = session.client("secretsmanager")
    reads: list[str] = []
    client.meta.events.register(
        "provide-client-params.secrets-manager.GetSecretValue", lambda params, **_: reads.append(params["SecretId"])
    )
    return client, reads


def destinations(session, channel: str, model: type, **options: Any) -> tuple[CallerDestinations, list[str]]:
    client, reads = reads_of(session)
    factory = lambda: SecretsProvider(boto3_client=client)  # noqa: E731
    return CallerDestinations(aws_resources.DESTINATION_PREFIX, channel, model, factory, **options), reads


def slack(session, post: FakePost, **options: Any) -> tuple[SlackSender, list[str]]:
    targets, reads = destinations(session, "slack", SlackTarget, **options)
    return SlackSender(sender_settings(Channel.SLACK), targets, post=post), reads


def webhook(session, post: FakePost) -> tuple[WebhookSender, list[str]]:
    targets, reads = destinations(session, "webhook", WebhookTarget)
    return WebhookSender(sender_settings(Channel.WEBHOOK), targets, post=post), reads


# ------------------------------------------------------------------------------------------------ the senders


def test_each_callers_slack_message_goes_to_its_own_channel(moto_aws):
    # Given two shops with Slack destinations of their own
    post = FakePost()
    sender, reads = slack(moto_aws, post)
    endpoints = aws_resources.Endpoints()

    # When a message of each is sent
    sender.send(channel_message(Channel.SLACK, caller=caller_id()))
    sender.send(channel_message(Channel.SLACK, caller=caller_id(OTHER)))

    # Then each went to its caller's URL, read from its caller's secret
    assert [c["url"] for c in post.calls] == [endpoints.slack_url(), endpoints.slack_url(OTHER)]
    assert reads == [aws_resources.destination_secret("slack"), aws_resources.destination_secret("slack", OTHER)]


def test_each_callers_webhook_is_signed_with_its_own_key_only(moto_aws):
    # Given two shops with webhook destinations and signing keys of their own
    post = FakePost()
    sender, _ = webhook(moto_aws, post)

    # When a message of the other shop is sent
    message = channel_message(Channel.WEBHOOK, caller=caller_id(OTHER))
    sender.send(message)

    # Then it went to that shop's endpoint with one signature, by that shop's key (a receiver knowing only the local
    # shop's key would refuse it)
    from devstack.receivers import check_signature

    [call] = post.calls
    assert call["url"] == aws_resources.Endpoints().webhook_url(OTHER)
    assert len(call["headers"]["webhook-signature"].split()) == 1
    check = {name.lower(): value for name, value in call["headers"].items()}
    now = float(check["webhook-timestamp"])
    assert check_signature([aws_resources.LOCAL_SHOPS[OTHER]], check, call["body"], tolerance=300, now=now) is None
    assert check_signature([aws_resources.Endpoints.signing_key()], check, call["body"], tolerance=300, now=now) == (
        "invalid_signature"
    )


@pytest.mark.parametrize("channel", [Channel.SLACK, Channel.WEBHOOK])
def test_a_caller_without_a_destination_is_dead_lettered_never_sent_elsewhere(moto_aws, channel):
    # Given a caller with no destination, while other callers have theirs (already read and cached)
    post = FakePost()
    sender, reads = (slack if channel is Channel.SLACK else webhook)(moto_aws, post)
    sender.send(channel_message(channel, caller=caller_id()))
    stranger = caller_id(new_caller())

    # When the stranger's message is sent
    with pytest.raises(PermanentDeliveryError) as caught:
        sender.send(channel_message(channel, caller=stranger))

    # Then nothing was posted for it, only its own secret was looked for, and the reason names the missing destination
    assert len(post.calls) == 1
    assert reads[-1] == secret_name(aws_resources.DESTINATION_PREFIX, channel.value, stranger)
    assert caught.value.provider_code == "no_destination"
    assert f"caller {stranger} has no {channel.value} destination" in caught.value.reason


def test_a_destination_scheduled_for_deletion_is_no_destination(moto_aws):
    # Given the other shop's Slack secret scheduled for deletion (GetSecretValue refuses it: InvalidRequestException,
    # https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html)
    moto_aws.client("secretsmanager").delete_secret(SecretId=aws_resources.destination_secret("slack", OTHER))
    post = FakePost()
    sender, _ = slack(moto_aws, post)

    # When its message is sent, then it is dead-lettered, not retried
    with pytest.raises(PermanentDeliveryError) as caught:
        sender.send(channel_message(Channel.SLACK, caller=caller_id(OTHER)))
    assert caught.value.provider_code == "no_destination"
    assert post.calls == []


def test_a_v1_message_without_a_caller_is_dead_lettered_without_reading_any_secret(moto_aws):
    post = FakePost()
    sender, reads = slack(moto_aws, post)
    with pytest.raises(PermanentDeliveryError) as caught:
        sender.send(channel_message(Channel.SLACK, caller=None))
    assert "names no caller" in caught.value.reason
    assert post.calls == [] and reads == []


def test_a_callers_secret_is_read_again_after_its_time_to_live(moto_aws):
    # Given a sender caching destinations for one second, after a first send
    post = FakePost()
    sender, reads = slack(moto_aws, post, max_age=1)
    sender.send(channel_message(Channel.SLACK))

    # When the shop's URL changes, a message is sent at once, and another after the time to live
    new = "https://hooks.slack.example/services/moved"
    moto_aws.client("secretsmanager").put_secret_value(
        SecretId=aws_resources.destination_secret("slack"), SecretString=json.dumps({"url": new})
    )
    sender.send(channel_message(Channel.SLACK))
    time.sleep(1.1)
    sender.send(channel_message(Channel.SLACK))

    # Then the cached URL served the second send, the new one the third
    old = aws_resources.Endpoints().slack_url()
    assert [c["url"] for c in post.calls] == [old, old, new]
    assert len(reads) == 2


def test_the_cache_keeps_at_most_max_callers(moto_aws):
    # Given a sender keeping one caller's destination
    post = FakePost()
    sender, reads = slack(moto_aws, post, max_callers=1)

    # When the two shops' messages alternate
    for caller in (caller_id(), caller_id(OTHER), caller_id()):
        sender.send(channel_message(Channel.SLACK, caller=caller))

    # Then the first shop's destination was dropped for the other's, and read again
    shops = (aws_resources.LOCAL_CALLER, OTHER, aws_resources.LOCAL_CALLER)
    assert reads == [aws_resources.destination_secret("slack", shop) for shop in shops]


# ------------------------------------------------------------------------------------------------- the directory


def describe_counter(session) -> tuple[Any, list[str]]:
    client = session.client("secretsmanager")
    calls: list[str] = []
    client.meta.events.register("before-call.secrets-manager", lambda model, **_: calls.append(model.name))
    return client, calls


def test_the_directory_describes_and_never_reads_and_caches_for_its_time_to_live(moto_aws):
    # Given a directory with a clock under the test's control
    client, calls = describe_counter(moto_aws)
    now = [1000.0]
    directory = SecretsManagerDirectory(aws_resources.DESTINATION_PREFIX, client, max_age=60, clock=lambda: now[0])
    shop, stranger = caller_id(), caller_id(new_caller())

    # When it is asked twice within the time to live, then once more after it
    first = [directory.has(shop, "slack"), directory.has(stranger, "slack")]
    again = [directory.has(shop, "slack"), directory.has(stranger, "slack")]
    now[0] += 61
    later = directory.has(shop, "webhook"), directory.has(shop, "slack")

    # Then the answers are right, each was described once per time to live, and no value was ever read
    assert first == again == [True, False]
    assert later == (True, True)
    assert calls == ["DescribeSecret"] * 4


def test_the_directory_counts_a_secret_scheduled_for_deletion_as_gone(moto_aws):
    # DescribeSecret returns DeletedDate for it (https://docs.aws.amazon.com/secretsmanager/latest/apireference/
    # API_DescribeSecret.html)
    secrets = moto_aws.client("secretsmanager")
    secrets.delete_secret(SecretId=aws_resources.destination_secret("webhook", OTHER), RecoveryWindowInDays=7)
    directory = SecretsManagerDirectory(aws_resources.DESTINATION_PREFIX, secrets)
    assert directory.has(caller_id(OTHER), "slack") is True
    assert directory.has(caller_id(OTHER), "webhook") is False


# ------------------------------------------------------------------------------------------------------ ingest


@pytest.fixture
def publisher(moto_aws, monkeypatch: pytest.MonkeyPatch) -> MemoryPublisher:
    fake = MemoryPublisher()
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: fake)
    return fake


def test_ingest_refuses_a_channel_the_caller_has_no_destination_for(publisher, moto_aws):
    # Given a caller without destinations, and one with a Slack destination only
    stranger, half = new_caller(), new_caller()
    secrets = moto_aws.client("secretsmanager")
    name = secret_name(aws_resources.DESTINATION_PREFIX, "slack", caller_id(half))
    secrets.create_secret(Name=name, SecretString=json.dumps({"url": "https://hooks.slack.example/x"}))

    # When each asks for email, Slack and webhook
    body = sample_request(channels=["email", "slack", "webhook"])
    refused = post(stranger, body)
    partly = post(half, sample_request(channels=["email", "slack", "webhook"]))

    # Then both answer 422 on `channels`, naming exactly the channels without a destination, and nothing is published
    assert refused.status == partly.status == 422
    assert refused.json()["error"]["code"] == "validation_failed"
    assert [(d["loc"], d["type"]) for d in refused.json()["error"]["details"]] == [
        (["channels"], "destination_missing"),
        (["channels"], "destination_missing"),
    ]
    assert [d["msg"].split(":")[0] for d in refused.json()["error"]["details"]] == [
        "channel 'slack'",
        "channel 'webhook'",
    ]
    assert [d["msg"].split(":")[0] for d in partly.json()["error"]["details"]] == ["channel 'webhook'"]
    assert publisher.records == []


def test_a_refused_request_goes_through_once_the_destination_exists(publisher, moto_aws):
    # Given a caller refused for want of a Slack destination
    shop = new_caller()
    body = sample_request(channels=["email", "slack"])
    assert post(shop, body).status == 422

    # When the operator sets one up (and ingest's cached answer has expired: a fresh execution environment)
    aws_resources.put_destinations(
        moto_aws.client("secretsmanager"), shop, signing_key=aws_resources.LOCAL_SHOPS[OTHER]
    )
    ingest.ingest_runtime.cache_clear()

    # Then the same request is accepted (its idempotency claim was released) and published once
    accepted = post(shop, body)
    assert accepted.status == 202, accepted.json
    assert accepted.json()["channels"] == ["email", "slack"]
    assert len(publisher.records) == 1


def test_channels_default_to_the_customers_addresses_whatever_destinations_the_caller_has(publisher):
    # Given the local shop, which has Slack and webhook destinations, and a request without `channels`
    body = sample_request()
    del body["channels"]

    # When it is posted, then only the customer's channels are chosen: Slack and webhook are sent when asked for
    accepted = post(aws_resources.LOCAL_CALLER, body)
    assert accepted.status == 202
    assert accepted.json()["channels"] == sorted(c.value for c in Channel if address_of(c))


def test_ingest_imports_no_secret_reading_at_init():
    # Given a fresh interpreter with the ingest function's code, as Lambda starts an execution environment
    path = os.pathsep.join(str(ROOT / part) for part in ("functions/ingest", "layers/shared/python"))
    senders_only = ("aws_lambda_powertools.utilities.parameters", "boto3")
    probe = f"import sys, ingest_handler; print(sorted(m for m in sys.modules if m.startswith({senders_only})))"

    # When it imports the handler (the init phase)
    env = {**os.environ, "PYTHONPATH": path}
    loaded = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)

    # Then Powertools' parameters utility and boto3 are not loaded: only a sender reads destination secrets
    assert loaded.stdout.strip() == "[]"
