"""The MSK samples in events/ invoke their functions exactly as `sam local invoke <Fn> -e events/<file>` would:
the file's JSON is the event, unchanged; the function's environment is the local one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack import aws_resources, standins
from devstack.consume import read_topic
from devstack.lambda_context import LocalLambdaContext
from devstack.msk_events import sender_sample
from devstack.receivers import DeliveryReceiver
from notifications.contracts.envelopes import ChannelMessage
from notifications.contracts.status_view import DeliveryState
from notifications.kafka.msk_event import read_event
from notifications.registry import Channel
from notifications.status import DynamoStatusView, StatusTable

EVENTS = Path(__file__).resolve().parents[2] / "events"
NOTIFICATION_ID = b"8f58c11d-ebc2-4ca7-a934-226e2bb6192c"


def load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def test_every_kafka_sample_is_a_well_formed_msk_event():
    for path in sorted(EVENTS.glob("*_msk.json")):
        records = read_event(json.loads(path.read_text()))
        assert len(records) == 1, path.name
        assert json.loads(records[0].value)["schema"].startswith("notification."), path.name


def test_fanout_sample(kafka_env, moto_aws):
    import fanout_handler

    before = len(
        read_topic(
            kafka_env,
            "notifications.webhook",
            where=lambda r: r.key == NOTIFICATION_ID,
            until=lambda _: False,
            timeout=1,
        )
    )
    assert fanout_handler.handler(load("fanout_msk.json"), LocalLambdaContext("fanout")) == {"batchItemFailures": []}
    after = read_topic(
        kafka_env,
        "notifications.webhook",
        where=lambda r: r.key == NOTIFICATION_ID,
        until=lambda found: len(found) > before,
    )
    assert len(after) == before + 1


@pytest.fixture
def providers(moto_aws):
    """Every channel's provider locally: SES and SNS in moto (with the local push endpoints, moto seeded as the
    local stack seeds it, so the push sample's endpoint exists), the local shops' Slack and webhook destinations on
    local receivers (each webhook path checked with its shop's key), and each channel's own stand-in
    (``devstack.standins``)."""
    keys = {f"/webhook/{shop}": [key] for shop, key in aws_resources.LOCAL_SHOPS.items()}
    with DeliveryReceiver() as slack, DeliveryReceiver(path_keys=keys) as webhook:
        endpoints = aws_resources.Endpoints(
            slack_base_url=slack.url("/slack"), webhook_base_url=webhook.url("/webhook")
        )
        aws_resources.create_all(moto_aws, endpoints)
        aws_resources.create_push_endpoints(moto_aws.client("sns"), aws_resources.seed_moto_in_process)
        yield standins.prepare_all(standins.Local(moto_aws, slack.url))


@pytest.mark.parametrize("channel", list(Channel))
def test_sender_samples(channel, kafka_env, providers, moto_aws, monkeypatch):
    import sender_handler

    # Given the channel's sender in its local environment, and the channel's sample event as the file holds it
    monkeypatch.setenv("CHANNEL", channel.value)
    for name, value in (providers[channel].environment if channel in providers else {}).items():
        monkeypatch.setenv(name, value)
    event = load(f"sender_{channel}_msk.json")
    [record] = read_event(event)

    # When the sender function is invoked with it
    result = sender_handler.handler(event, LocalLambdaContext(f"{channel}-sender"))

    # Then no record failed, and the provider took the message: the status says sent, with the provider's id
    assert result == {"batchItemFailures": []}
    message = ChannelMessage.model_validate_json(record.value)
    status = DynamoStatusView(StatusTable(aws_resources.STATUS_TABLE, moto_aws.client("dynamodb"))).get(message.key)
    assert status is not None
    [sent] = status.channels
    assert (sent.channel, sent.state) == (channel, DeliveryState.SENT)


def test_every_sender_sample_is_the_one_the_generator_writes():
    # (``python -m devstack.msk_events <channel> > events/sender_<channel>_msk.json``)
    for channel in Channel:
        assert load(f"sender_{channel}_msk.json") == sender_sample(channel), channel
