"""Sender guarantees: one send per notification and channel across redeliveries; poison records to the DLQ.

The real delivery domain and sender handler, the status table on (in-process moto) DynamoDB, where each send is
claimed and its outcome recorded, and fakes for the provider and the broker.
"""

from __future__ import annotations

import json

import pytest

from devstack import aws_resources
from devstack.lambda_context import LocalLambdaContext
from devstack.msk_events import build_event
from notifications import delivery
from notifications.channels.base import Receipt
from notifications.contracts.envelopes import ChannelMessage
from notifications.contracts.status_view import DeliveryState
from notifications.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.kafka.msk_event import KafkaRecord
from notifications.registry import Channel
from notifications.status import Claim, StatusTable
from tests.channel_support import CLUSTER_ARN, channel_message, kafka_record, message_record, sender_settings
from tests.support import DynamoStatus, MemoryPublisher


class RecordingSender:
    """ChannelSender fake: counts provider calls per delivery key; fails for chosen order ids."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.sent: list[str] = []
        self.transient: set[str] = set()
        self.permanent: set[str] = set()

    def send(self, message: ChannelMessage) -> Receipt:
        if message.purchase.order_id in self.transient:
            raise TransientDeliveryError("provider timed out", retry_after=3)
        if message.purchase.order_id in self.permanent:
            raise PermanentDeliveryError("recipient rejected")
        self.sent.append(message.delivery_key)
        return Receipt(provider_message_id=f"p-{len(self.sent)}")


@pytest.fixture
def sender_stack(moto_aws, monkeypatch):
    """Build the sender function for a channel around fakes; answers (invoke, sender, publisher, status)."""

    def build(channel: Channel):
        import sender_handler

        sender = RecordingSender(channel)
        publisher = MemoryPublisher()
        status = DynamoStatus(StatusTable(aws_resources.STATUS_TABLE, moto_aws.client("dynamodb")))
        clock = iter(range(10**9))  # waits pass at once: each reading of the clock is a second later
        service = delivery.DeliveryService(
            wall_clock=lambda: 1_800_000_000.0 + next(clock),
            sleep=lambda seconds: None,
            settings=sender_settings(channel),
            sender=sender,
            status=status,
            publisher=publisher,
        )
        monkeypatch.setattr(sender_handler, "delivery_runtime", lambda: service)

        def invoke(records):
            event = build_event(records, bootstrap_servers="b-1:9098", event_source_arn=CLUSTER_ARN)
            return sender_handler.handler(event, LocalLambdaContext(f"{channel.value}-sender"))

        return invoke, sender, publisher, status

    return build


def failure(record):
    return {"itemIdentifier": {"partition": record.partition_id, "offset": record.offset}}


@pytest.mark.parametrize("channel", list(Channel))
def test_a_redelivered_batch_sends_each_notification_once(sender_stack, channel):
    # Given a batch of three messages on two partitions
    invoke, sender, _, _ = sender_stack(channel)
    messages = [channel_message(channel) for _ in range(3)]
    batch = [message_record(m, 100 + i, partition=i % 2) for i, m in enumerate(messages)]

    # When the same batch arrives twice (a retried invocation)
    first = invoke(batch)
    second = invoke(batch)

    # Then both invocations succeed and the provider was called once per notification
    assert first == second == {"batchItemFailures": []}
    assert sorted(sender.sent) == sorted(m.delivery_key for m in messages)


@pytest.mark.parametrize("channel", list(Channel))
def test_a_transient_failure_is_deferred_and_sent_once_when_it_comes_round(sender_stack, channel):
    # Given four messages on one partition, the second failing transiently
    invoke, sender, publisher, status = sender_stack(channel)
    messages = [channel_message(channel) for _ in range(4)]
    batch = [message_record(m, 200 + i) for i, m in enumerate(messages)]
    sender.transient.add(messages[1].purchase.order_id)

    # When the batch is handled
    result = invoke(batch)

    # Then nothing is reported failed: the failing record went back on its topic to be tried later, its status says
    # why (not final), and the others were sent
    assert result == {"batchItemFailures": []}
    assert sorted(sender.sent) == sorted(m.delivery_key for m in (messages[0], messages[2], messages[3]))
    [again] = publisher.on(f"notifications.{channel.value}")
    assert again.key == batch[1].key and again.value == batch[1].value
    assert dict(again.headers)["retry-attempt"] == b"1"
    view = status.get(messages[1].key)
    assert view is not None and view.channels[0].last_error == "provider timed out"
    assert view.channels[0].state != DeliveryState.FAILED

    # When the deferred copy comes round after the provider recovered, and the whole batch is redelivered as well
    sender.transient.clear()
    came_round = KafkaRecord(
        topic=again.topic, partition=0, offset=204, timestamp=0, key=again.key, value=again.value, headers=again.headers
    )
    result = invoke([*batch, came_round])

    # Then everything is done and every notification was sent exactly once
    assert result == {"batchItemFailures": []}
    assert sorted(sender.sent) == sorted(m.delivery_key for m in messages)
    view = status.get(messages[1].key)
    assert view is not None and view.channels[0].state == DeliveryState.SENT


def poison_batch(channel: Channel):
    """Good messages around every kind of record a sender can never deliver, and the expected DLQ reasons."""
    good = [channel_message(channel) for _ in range(2)]
    other = next(c for c in Channel if c != channel)
    sample = json.loads(good[0].to_json())
    topic = f"notifications.{channel.value}"
    poison = {
        b"not-json": (b"{not json", "value is not JSON"),
        b"empty": (b"", "empty value"),
        b"v9": (json.dumps(sample | {"schema": "notification.channel/v9"}).encode(), "unsupported schema"),
        b"unknown-channel": (
            json.dumps(sample | {"channel": "pager"}).encode(),
            "invalid notification.channel/v",  # v1, or v2 for a channel of the caller's destination
        ),
        b"mismatch": (channel_message(other).to_json(), f"channel '{other.value}' on the {channel.value} topic"),
        b"invalid": (json.dumps({k: v for k, v in sample.items() if k != "purchase"}).encode(), "purchase"),
    }
    records = [message_record(good[0], 0)]
    records += [kafka_record(topic, i + 1, value, key=key) for i, (key, (value, _)) in enumerate(poison.items())]
    records.append(message_record(good[1], len(records)))
    return good, records, {key: reason for key, (_, reason) in poison.items()}


@pytest.mark.parametrize("channel", list(Channel))
def test_poison_records_go_to_the_dlq_with_reason_and_source_and_the_rest_is_delivered(sender_stack, channel):
    # Given a batch with a poison record of every kind between two good messages
    invoke, sender, publisher, _ = sender_stack(channel)
    good, records, reasons = poison_batch(channel)

    # When the sender handles it
    result = invoke(records)

    # Then nothing is retried, both good messages were sent, and every poison record is in the DLQ as it was
    assert result == {"batchItemFailures": []}
    assert sorted(sender.sent) == sorted(m.delivery_key for m in good)  # lanes run concurrently
    dead = {d.key: d for d in publisher.on("notifications.dlq")}
    assert set(dead) == set(reasons)
    for record in records[1:-1]:
        letter = dead[record.key]
        headers = dict(letter.headers)
        assert letter.value == (record.value or b"")
        assert reasons[record.key] in headers["dlq-reason"].decode()
        assert headers["dlq-source-topic"] == f"notifications.{channel.value}".encode()
        assert headers["dlq-source-partition"] == b"0"
        assert headers["dlq-source-offset"] == str(record.offset).encode()
        assert headers["dlq-stage"] == f"sender-{channel.value}".encode()


def test_a_permanent_provider_error_dead_letters_the_record_and_marks_it_failed(sender_stack):
    # Given two messages, the provider rejecting the first for good
    invoke, sender, publisher, status = sender_stack(Channel.SMS)
    messages = [channel_message(Channel.SMS) for _ in range(2)]
    sender.permanent.add(messages[0].purchase.order_id)
    batch = [message_record(m, i) for i, m in enumerate(messages)]

    # When the batch is handled
    result = invoke(batch)

    # Then the rejected one is in the DLQ with the provider's reason and marked failed, the other was sent
    assert result == {"batchItemFailures": []}
    [letter] = publisher.on("notifications.dlq")
    assert dict(letter.headers)["dlq-reason"] == b"recipient rejected"
    assert sender.sent == [messages[1].delivery_key]
    view = status.get(messages[0].notification_id)
    assert view is not None and view.channels[0].last_error == "recipient rejected"
    assert view.channels[0].state == DeliveryState.FAILED

    # When the same batch is redelivered
    assert invoke(batch) == {"batchItemFailures": []}

    # Then the good one is not sent again
    assert sender.sent == [messages[1].delivery_key]


def test_a_poison_record_is_retried_when_the_dlq_does_not_acknowledge(sender_stack, monkeypatch):
    # Given a DLQ that does not acknowledge
    invoke, sender, publisher, _ = sender_stack(Channel.EMAIL)
    publisher.fail_topics.add("notifications.dlq")
    good = channel_message(Channel.EMAIL)
    batch = [kafka_record("notifications.email", 0, b"nope", key=b"bad"), message_record(good, 1)]

    # When the batch is handled
    result = invoke(batch)

    # Then the poison record is reported failed instead of being dropped, and the good one was sent
    assert result == {"batchItemFailures": [failure(batch[0])]}
    assert sender.sent == [good.delivery_key]


def test_a_record_whose_send_another_attempt_holds_is_reported_failed_and_sent_once_after_it(sender_stack):
    # Given a message whose send another attempt has claimed, its lease not lapsed
    invoke, sender, publisher, status = sender_stack(Channel.EMAIL)
    message = channel_message(Channel.EMAIL)
    assert status.claim_send(message.key, Channel.EMAIL, 300).outcome is Claim.CLAIMED
    record = message_record(message, 7)

    # When its record is delivered
    result = invoke([record])

    # Then it is reported failed, for the event-source mapping to retry after that attempt: not sent, not deferred,
    # not dead-lettered
    assert result == {"batchItemFailures": [failure(record)]}
    assert sender.sent == []
    assert publisher.records == []

    # When the other attempt ends without reaching the provider (its claim released) and the record is redelivered
    status.release(message.key, Channel.EMAIL)
    result = invoke([record])

    # Then it is sent once and the channel is sent
    assert result == {"batchItemFailures": []}
    assert sender.sent == [message.delivery_key]
    view = status.get(message.key)
    assert view is not None and view.channels[0].state == DeliveryState.SENT
