"""Redrive (``ops.redrive``, the ``notifications-redrive`` command) on the real broker: dead-lettered webhook
messages, of both kinds, are replayed twice and delivered once.

The trigger's on-failure records are AWS's documented example
(https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html, copied in
``tests.on_failure_example``), built from the doc, not from the emulator."""

from __future__ import annotations

import base64
import io
import json

import pytest

from devstack import aws_resources
from devstack.__main__ import main as devstack_main
from devstack.broker import ensure_topics
from devstack.consume import read_topic
from devstack.lambda_context import LocalLambdaContext
from devstack.msk_events import build_event, encode_record
from devstack.receivers import DeliveryReceiver
from notifications.kafka.producer import KafkaPublisher, OutgoingRecord, publish_one
from notifications.records import DLQ_HEADERS
from notifications.registry import Channel
from notifications.settings import KafkaSettings
from ops import redrive
from tests.channel_support import CLUSTER_ARN, channel_message
from tests.on_failure_example import (
    EXAMPLE_CONDITION,
    EXAMPLE_KEY,
    EXAMPLE_OFFSET,
    EXAMPLE_PARTITION,
    EXAMPLE_TOPIC,
    EXAMPLE_VALUE,
    documented_example,
)

TOPIC = "notifications.webhook"
KEY = "whsec_" + base64.b64encode(b"redrive test signing key, 32 byte").decode()


@pytest.fixture
def webhook(moto_aws, kafka_env, monkeypatch):
    """The webhook sender function's environment, with a receiver on 127.0.0.1 as the endpoint."""
    monkeypatch.setenv("CHANNEL", Channel.WEBHOOK.value)
    with DeliveryReceiver(signing_key=KEY) as receiver:
        moto_aws.client("secretsmanager").put_secret_value(
            SecretId=aws_resources.destination_secret("webhook"),
            SecretString=json.dumps({"url": receiver.url("/webhook"), "signing_keys": [KEY]}),
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


# --------------------------------------------------------------------------- the trigger's on-failure records


def publish_on_dlq(settings: KafkaSettings, key: bytes | None, document: dict) -> str:
    """Put an on-failure record on the DLQ as Lambda does (original key, JSON value, no headers); its position."""
    value = json.dumps(document).encode()
    publisher = KafkaPublisher(settings)
    publish_one(publisher, OutgoingRecord("notifications.dlq", key, value))
    publisher.close()
    [record] = [r for r in redrive.read_to_end(settings, "notifications.dlq") if r.value == value][-1:]
    return str(record.offset) if record.partition == 0 else f"{record.partition}:{record.offset}"


def test_awss_documented_on_failure_record_is_listed_and_its_record_replayed(kafka_env):
    # Given AWS's documented example on the DLQ exactly as the Lambda guide shows it, keyed like its record
    settings = KafkaSettings(kafka_bootstrap_servers=kafka_env)
    ensure_topics(kafka_env, {EXAMPLE_TOPIC: 1})
    position = publish_on_dlq(settings, EXAMPLE_KEY, documented_example())

    # When the DLQ is listed
    code, listing = run("list")

    # Then the record inside is listed with its source topic, partition and offset, the trigger's function and
    # the condition
    assert code == 0
    assert (
        f"{position}\t{EXAMPLE_TOPIC}/{EXAMPLE_PARTITION}/{EXAMPLE_OFFSET}\tesm-my-function\t"
        f"{EXAMPLE_CONDITION} after 3 invocation(s) (function error: Unhandled)\t{EXAMPLE_KEY.decode()}"
    ) in listing.splitlines()

    # When it is replayed
    before = len(redrive.read_to_end(settings, EXAMPLE_TOPIC))
    code, output = run("replay", "--offset", position)

    # Then the original record, as the payload holds it, is back on its source topic
    assert code == 0, output
    assert f"replayed {position} -> {EXAMPLE_TOPIC}" in output
    [copy] = redrive.read_to_end(settings, EXAMPLE_TOPIC)[before:]
    assert (copy.key, copy.value, copy.headers) == (EXAMPLE_KEY, EXAMPLE_VALUE, ())


def test_a_message_the_trigger_gave_up_on_is_replayed_twice_and_delivered_once(webhook, kafka_env):
    settings = KafkaSettings(kafka_bootstrap_servers=kafka_env)
    message = channel_message(Channel.WEBHOOK)
    key = str(message.notification_id).encode()

    # Given a webhook message on its topic that the trigger gave up on: AWS's documented on-failure record
    # carrying it in the payload (as the MSK event carries it: key and value base64, header bytes signed)
    publisher = KafkaPublisher(settings)
    publish_one(publisher, OutgoingRecord(TOPIC, key, message.to_json(), (("correlation-id", b"corr-trigger"),)))
    publisher.close()
    [original] = read_topic(kafka_env, TOPIC, where=lambda r: r.key == key, until=lambda r: len(r) >= 1)
    document = documented_example()
    [example] = document["payload"]["records"].pop(f"{EXAMPLE_TOPIC}-{EXAMPLE_PARTITION}")
    document["payload"]["records"][original.partition_id] = [{**example, **encode_record(original)}]
    document["KafkaBatchInfo"]["recordInfo"]["offset"] = str(original.offset)
    position = publish_on_dlq(settings, key, document)

    # When redrive lists it
    code, listing = run("list")

    # Then it shows where the message came from and the trigger's condition
    assert code == 0
    [line] = [row for row in listing.splitlines() if row.startswith(f"{position}\t")]
    assert line.split("\t")[1:3] == [f"{TOPIC}/{original.partition}/{original.offset}", "esm-my-function"]
    assert line.split("\t")[3].startswith("RetriesExhausted")

    # When it is replayed twice (an operator's double run)
    for _ in range(2):
        code, output = run("replay", "--offset", position)
        assert code == 0, output

    # Then its topic holds the original and two copies of it, headers as they were
    copies = [r for r in redrive.read_to_end(settings, TOPIC) if r.key == key][1:]
    assert len(copies) == 2
    assert all((c.value, c.headers) == (original.value, original.headers) for c in copies)

    # When the sender receives both copies
    assert deliver(copies) == {"batchItemFailures": []}

    # Then the receiver got the notification exactly once: the second replay sent nothing
    [accepted] = webhook.accepted()
    assert accepted.json()["notification_id"] == str(message.notification_id)
    assert len(webhook.deliveries()) == 1
