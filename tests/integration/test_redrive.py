"""Redrive (``ops.redrive``, the ``notifications-redrive`` command) on the real broker: a dead-lettered webhook
message is replayed twice and delivered once."""

from __future__ import annotations

import io
import json

import pytest

from devstack import aws_resources
from devstack.__main__ import main as devstack_main
from devstack.consume import read_topic
from devstack.lambda_context import LocalLambdaContext
from devstack.msk_events import build_event
from devstack.receivers import DeliveryReceiver
from notifications.kafka.producer import KafkaPublisher, OutgoingRecord, publish_one
from notifications.models import Channel
from notifications.records import DLQ_HEADERS
from notifications.settings import KafkaSettings
from ops import redrive
from tests.channel_support import CLUSTER_ARN, channel_message

TOPIC = "notifications.webhook"
KEY = "redrive-signing-key-0123456789"


@pytest.fixture
def webhook(moto_aws, kafka_env, monkeypatch):
    """The webhook sender function's environment, with a receiver on 127.0.0.1 as the endpoint."""
    monkeypatch.setenv("CHANNEL", Channel.WEBHOOK.value)
    with DeliveryReceiver(signing_key=KEY) as receiver:
        moto_aws.client("secretsmanager").put_secret_value(
            SecretId=aws_resources.WEBHOOK_SECRET,
            SecretString=json.dumps({"url": receiver.url("/webhook"), "signing_key": KEY}),
        )
        yield receiver


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return redrive.main(list(argv), out=out), out.getvalue()


def deliver(records) -> dict:
    import sender_handler

    event = build_event(records, bootstrap_servers="local", event_source_arn=CLUSTER_ARN)
    return sender_handler.handler(event, LocalLambdaContext("webhook-sender"))


def test_a_dead_letter_replayed_twice_is_delivered_once(webhook, kafka_env):
    settings = KafkaSettings(kafka_bootstrap_servers=kafka_env)
    message = channel_message(Channel.WEBHOOK)
    key = str(message.notification_id).encode()

    def mine(records):
        return [r for r in records if r.key == key]

    # Given a webhook message on its topic, and a receiver that refuses it once for good (410)
    publisher = KafkaPublisher(settings)
    publish_one(publisher, OutgoingRecord(TOPIC, key, message.to_json(), (("correlation-id", b"corr-redrive"),)))
    publisher.close()
    [original] = read_topic(kafka_env, TOPIC, where=lambda r: r.key == key, until=lambda r: len(r) >= 1)
    webhook.fail_next(1, status=410)

    # When the sender handles it
    assert deliver([original]) == {"batchItemFailures": []}

    # Then it is in the DLQ, and `list` shows where it came from and why
    [dead] = mine(redrive.read_to_end(settings, "notifications.dlq"))
    position = str(dead.offset) if dead.partition == 0 else f"{dead.partition}:{dead.offset}"
    code, listing = run("list")
    assert code == 0
    assert listing.splitlines()[0] == "OFFSET\tSOURCE\tSTAGE\tREASON\tKEY"
    assert (
        f"{position}\t{TOPIC}/{original.partition}/{original.offset}\tsender-webhook\t"
        f"webhook answered HTTP 410 (failure_injected)\t{key.decode()}"
    ) in listing.splitlines()
    code, newest = run("list", "--limit", "1")
    assert code == 0 and newest.splitlines()[1].startswith(f"{position}\t")

    # When a dry run is asked for, then the plan is printed and nothing is published
    code, plan = run("replay", "--offset", position, "--dry-run")
    assert code == 0 and plan.strip() == f"would replay {position} -> {TOPIC} key={key.decode()}"
    assert len(mine(redrive.read_to_end(settings, TOPIC))) == 1

    # When it is replayed, twice (an operator's double run)
    for _ in range(2):
        code, output = run("replay", "--offset", position)
        assert code == 0, output
        assert f"replayed {position} -> {TOPIC}" in output

    # Then its topic holds the original and two copies of it, without the dlq-* headers, correlation id kept
    copies = mine(redrive.read_to_end(settings, TOPIC))[1:]
    assert len(copies) == 2
    for copy in copies:
        assert copy.value == original.value
        assert not {name for name, _ in copy.headers} & DLQ_HEADERS
        assert copy.header("correlation-id") == b"corr-redrive"

    # When the sender receives both copies (the receiver has recovered)
    assert deliver(copies) == {"batchItemFailures": []}

    # Then the receiver accepted the notification exactly once, signed
    [accepted] = webhook.accepted()
    assert accepted.signature_ok is True
    assert accepted.json()["notification_id"] == str(message.notification_id)
    assert len(webhook.deliveries()) == 2  # the 410, then one delivery


def test_replaying_an_unknown_offset_is_an_error(kafka_env):
    code, _ = run("--bootstrap", kafka_env, "replay", "--offset", "999999999")
    assert code == 2


def test_a_dead_letter_without_a_source_cannot_be_replayed(kafka_env):
    # Given a record on the DLQ that no stage of ours wrote (no dlq-source-topic header)
    settings = KafkaSettings(kafka_bootstrap_servers=kafka_env)
    publisher = KafkaPublisher(settings)
    publish_one(publisher, OutgoingRecord("notifications.dlq", b"foreign", b"{}", ()))
    publisher.close()
    [foreign] = [r for r in redrive.read_to_end(settings, "notifications.dlq") if r.key == b"foreign"][-1:]

    # When it is replayed
    code, output = run("replay", "--offset", str(foreign.offset))

    # Then nothing is published and the operator is told why
    assert code == 1
    assert "NOT replayed" in output and "no dlq-source-topic header" in output


def test_the_local_stack_alias_hands_every_argument_to_the_tool(kafka_env, capsys):
    # Given a dead letter on the DLQ of the cluster KAFKA_BOOTSTRAP_SERVERS names
    publisher = KafkaPublisher(KafkaSettings(kafka_bootstrap_servers=kafka_env))
    publish_one(publisher, OutgoingRecord("notifications.dlq", b"via-alias", b"{}", ()))
    publisher.close()

    # When `python -m devstack redrive list --limit 1` runs
    code = devstack_main(["redrive", "list", "--limit", "1"])

    # Then the tool listed that cluster's newest dead letter, honouring its own option
    assert code == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header == "OFFSET\tSOURCE\tSTAGE\tREASON\tKEY"
    assert len(rows) == 1 and rows[0].endswith("\tvia-alias")
