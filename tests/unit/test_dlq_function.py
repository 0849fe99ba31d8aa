"""The dead-letter function (``functions/dlq``) on moto's DynamoDB: every dead letter on ``notifications.dlq``, of
either kind, marks its notification's channels failed and is counted once as ``DeadLetters``.

The trigger's on-failure records follow AWS's documented example
(https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html, copied in
``tests.on_failure_example``), with one of our channel messages as the payload's record.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from uuid import UUID

import dlq_handler
import ingest_handler
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from devstack.apigw import http_result
from devstack.aws_resources import STATUS_TABLE
from devstack.lambda_context import LocalLambdaContext
from devstack.msk_events import build_event, signed_bytes
from notifications.callers import Caller
from notifications.contracts.keys import NotificationKey
from notifications.kafka.msk_event import KafkaRecord
from notifications.records import dead_letter
from notifications.registry import Channel
from notifications.runtime import ingest
from notifications.status import StatusTable
from tests.channel_support import CLUSTER_ARN, channel_message, message_record, requested
from tests.on_failure_example import documented_example
from tests.support import DynamoStatus, MemoryPublisher, record_accepted

EVENTS = Path(__file__).resolve().parents[2] / "events"
DLQ = "notifications.dlq"


def load(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.fixture
def status(moto_aws) -> DynamoStatus:
    return DynamoStatus(StatusTable(STATUS_TABLE, moto_aws.client("dynamodb")))


def on_failure(original: KafkaRecord) -> dict:
    """AWS's documented example with ``original`` as the payload's record."""
    document = documented_example()
    [example] = document["payload"]["records"].pop("my-topic-0")
    document["payload"]["records"][original.partition_id] = [
        {
            **example,
            "topic": original.topic,
            "partition": original.partition,
            "offset": original.offset,
            "key": base64.b64encode(original.key or b"").decode(),
            "value": base64.b64encode(original.value or b"").decode(),
            "headers": [{name: signed_bytes(value)} for name, value in original.headers],
        }
    ]
    document["KafkaBatchInfo"]["recordInfo"]["offset"] = str(original.offset)
    return document


def dlq_event(*values: tuple[bytes | None, bytes, tuple[tuple[str, bytes], ...]]) -> dict:
    """A Lambda Kafka event of records on the DLQ, each (key, value, headers)."""
    records = [
        KafkaRecord(
            topic=DLQ, partition=0, offset=offset, timestamp=1_790_000_000_000, key=key, value=value, headers=headers
        )
        for offset, (key, value, headers) in enumerate(values)
    ]
    return build_event(records, bootstrap_servers="local", event_source_arn=CLUSTER_ARN)


def invoke(event: dict) -> dict:
    return dlq_handler.handler(event, LocalLambdaContext("dlq"))


def dead_letters_counted(output: str) -> int:
    """The DeadLetters values in the EMF blobs Powertools printed."""
    count = 0
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            value = json.loads(line).get("DeadLetters", 0)
            count += sum(value) if isinstance(value, list) else value
    return count


def test_the_sample_marks_both_channels_failed_and_get_shows_them(moto_aws, status, monkeypatch, capsys):
    # Given the sample notification accepted on four channels
    event = load("dlq_kafka")
    sample = load("ingest_get")
    caller = Caller.iam(sample["requestContext"]["authorizer"]["iam"]["userArn"])
    key = NotificationKey(caller.id, UUID(sample["pathParameters"]["id"]))
    record_accepted(moto_aws.client("dynamodb"), key, [Channel.EMAIL, Channel.SMS, Channel.SLACK, Channel.WEBHOOK])

    # When the dead-letter function gets the sample: the webhook sender's dead letter, and the email trigger's
    # on-failure record
    assert invoke(event) == {"batchItemFailures": []}

    # Then GET /v1/notifications/{id} shows both channels failed with their reasons, the others untouched
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: MemoryPublisher())
    answer = http_result(ingest_handler.handler(load("ingest_get"), LocalLambdaContext("ingest")))
    assert answer.status == 200
    channels = {c["channel"]: c for c in answer.json()["channels"]}
    states = {name: c["state"] for name, c in channels.items()}
    assert (states.pop("email"), states.pop("webhook")) == ("failed", "failed")
    assert states and set(states.values()) == {"accepted"}
    assert channels["webhook"]["last_error"] == "webhook answered HTTP 410"
    assert channels["email"]["last_error"] == "RetriesExhausted after 21 invocation(s) (function error: Unhandled)"
    # A dead letter is not a delivery attempt
    assert channels["email"]["attempts"] == channels["webhook"]["attempts"] == 0
    # And each dead letter was counted once
    assert dead_letters_counted(capsys.readouterr().out) == 2


def test_a_requested_envelope_given_up_by_fanouts_trigger_fails_every_channel_it_asked_for(status, capsys):
    # Given a notification accepted on email and slack, whose requested record the fanout trigger gave up on
    envelope = requested(channels=["email", "slack"])
    original = KafkaRecord(
        topic="notifications.requested",
        partition=2,
        offset=9,
        timestamp=1_790_000_000_000,
        key=str(envelope.notification_id).encode(),
        value=envelope.to_json(),
        headers=(("correlation-id", b"corr-fanout"),),
    )

    # When its on-failure record reaches the dead-letter function
    assert invoke(dlq_event((original.key, json.dumps(on_failure(original)).encode(), ()))) == {"batchItemFailures": []}

    # Then both channels are failed with the trigger's condition
    view = status.get(envelope.notification_id)
    assert view is not None
    assert {(c.channel, c.state.value, c.last_error) for c in view.channels} == {
        (Channel.EMAIL, "failed", "RetriesExhausted after 3 invocation(s) (function error: Unhandled)"),
        (Channel.SLACK, "failed", "RetriesExhausted after 3 invocation(s) (function error: Unhandled)"),
    }
    assert dead_letters_counted(capsys.readouterr().out) == 1


def test_a_sent_channel_stays_sent(status):
    # Given a webhook message that was sent, and then (a redelivery) dead-lettered after all
    message = channel_message(Channel.WEBHOOK)
    status.record_sent(message.notification_id, Channel.WEBHOOK, "provider-1")
    letter = dead_letter(message_record(message, 4), "webhook answered HTTP 410", topic=DLQ, stage="sender-webhook")

    # When the dead-letter function gets it
    assert invoke(dlq_event((letter.key, letter.value, letter.headers))) == {"batchItemFailures": []}

    # Then the status still says sent
    view = status.get(message.notification_id)
    assert view is not None and [c.state.value for c in view.channels] == ["sent"]


def test_dead_letters_that_name_no_notification_are_counted_and_done(status, capsys):
    # Given a poison record dead-lettered by a sender, and a record on the DLQ that none of ours wrote
    poison = KafkaRecord(topic="notifications.sms", partition=0, offset=1, timestamp=1, key=b"p", value=b"{not json")
    letter = dead_letter(poison, "value is not JSON", topic=DLQ, stage="sender-sms")

    # When the dead-letter function gets them
    answer = invoke(dlq_event((letter.key, letter.value, letter.headers), (b"foreign", b"\x00\x01", ())))

    # Then both are done (nothing to mark) and both are counted
    assert answer == {"batchItemFailures": []}
    assert dead_letters_counted(capsys.readouterr().out) == 2


def test_a_status_write_that_fails_is_retried_not_swallowed(moto_aws, status):
    # Given a dead letter for a notification next to one naming none, and a status table that cannot be written
    message = channel_message(Channel.EMAIL)
    letter = dead_letter(message_record(message, 4), "SES rejected the address", topic=DLQ, stage="sender-email")
    moto_aws.client("dynamodb").delete_table(TableName=STATUS_TABLE)

    # When the dead-letter function gets both
    answer = invoke(dlq_event((letter.key, letter.value, letter.headers), (b"foreign", b"{}", ())))

    # Then the one whose write failed is reported, so the trigger retries it, and the other is done
    assert answer == {"batchItemFailures": [{"itemIdentifier": {"partition": f"{DLQ}-0", "offset": 0}}]}

    # And alone, its failure fails the invocation (Powertools' BatchProcessor when every record failed)
    with pytest.raises(BatchProcessingError):
        invoke(dlq_event((letter.key, letter.value, letter.headers)))
