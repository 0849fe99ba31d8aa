"""The MSK samples in events/ invoke their functions exactly as `sam local invoke <Fn> -e events/<file>` would:
the file's JSON is the event, unchanged; the function's environment is the local one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends

from devstack import aws_resources
from devstack.consume import read_topic
from devstack.lambda_context import LocalLambdaContext
from devstack.receivers import DeliveryReceiver
from notifications.kafka.msk_event import read_event
from notifications.models import Channel

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
def receivers(moto_aws):
    """Slack and webhook targets on local receivers, their secrets pointing at them."""
    keys = {f"/webhook/{shop}": [key] for shop, key in aws_resources.LOCAL_SHOPS.items()}
    with DeliveryReceiver() as slack, DeliveryReceiver(path_keys=keys) as webhook:
        endpoints = aws_resources.Endpoints(
            slack_base_url=slack.url("/slack"), webhook_base_url=webhook.url("/webhook")
        )
        aws_resources.create_all(moto_aws, endpoints)
        yield {"slack": slack, "webhook": webhook}


@pytest.mark.parametrize("channel", [channel.value for channel in Channel])
def test_sender_samples(channel, kafka_env, receivers, monkeypatch):
    import sender_handler

    monkeypatch.setenv("CHANNEL", channel)
    result = sender_handler.handler(load(f"sender_{channel}_msk.json"), LocalLambdaContext(f"{channel}-sender"))
    assert result == {"batchItemFailures": []}
    if channel == "email":
        sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
        assert [m.destinations["ToAddresses"] for m in sent] == [["ada@example.com"]]
    elif channel == "sms":
        sms = list(sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages.values())
        assert [phone for phone, _ in sms] == ["+4915112345678"]
        assert "A-1001" in sms[0][1]
    else:
        # at the samples' caller's own destination (its webhook signed with that caller's key)
        delivered = receivers[channel].accepted(f"/{channel}/sample-shop")
        assert len(delivered) == 1
        assert delivered[0].signature_ok is (True if channel == "webhook" else None)
        assert "A-1001" in delivered[0].body.decode()
