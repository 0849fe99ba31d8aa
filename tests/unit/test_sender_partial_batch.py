"""The sender reports exactly the failed record of a batch, in AWS's Kafka itemIdentifier shape."""

from __future__ import annotations

import io
import json
import uuid

from devstack.lambda_context import LocalLambdaContext
from devstack.msk_events import build_event
from notifications import delivery
from notifications.channels.base import Receipt
from notifications.contracts.envelopes import ChannelMessage
from notifications.errors import TransientDeliveryError
from notifications.kafka.msk_event import KafkaRecord
from notifications.observability import logger
from notifications.registry import Channel
from notifications.settings import SenderSettings
from tests.channel_support import channel_message, message_record
from tests.support import InMemoryStatusStore, MemoryPublisher

ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/c/abc-1"


class FlakySender:
    """ChannelSender fake: fails transiently for the given order ids, records every successful send."""

    channel = Channel.EMAIL

    def __init__(self, failing_orders: set[str]) -> None:
        self.failing_orders = failing_orders
        self.sent: list[ChannelMessage] = []

    def send(self, message: ChannelMessage) -> Receipt:
        if message.purchase.order_id in self.failing_orders:
            raise TransientDeliveryError("provider timed out")
        self.sent.append(message)
        return Receipt(provider_message_id=f"msg-{len(self.sent)}")


def email_message() -> ChannelMessage:
    return channel_message(Channel.EMAIL)


def email_service(
    moto_aws, sender: FlakySender, status: InMemoryStatusStore, publisher: MemoryPublisher | None = None
) -> delivery.DeliveryService:
    settings = SenderSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "CHANNEL": "email",
            "EMAIL_FROM_ADDRESS": "orders@shop.example",
            "STATUS_TABLE_NAME": "notifications-status",
            "IDEMPOTENCY_TABLE_NAME": "notifications-idempotency",
        }
    )
    return delivery.DeliveryService(
        settings=settings,
        sender=sender,
        status=status,
        publisher=publisher or MemoryPublisher(),
    )


def test_one_of_three_failing_is_the_only_item_failure(moto_aws, monkeypatch):
    import sender_handler

    # Given three email messages on partition 2, the second failing transiently, and Kafka not taking its
    # deferral (so it cannot be set aside and must be retried by the event-source mapping)
    messages = [email_message() for _ in range(3)]
    failing = messages[1].purchase.order_id
    sender = FlakySender({failing})
    status = InMemoryStatusStore()
    service = email_service(moto_aws, sender, status, MemoryPublisher(fail_topics=["notifications.email"]))
    monkeypatch.setattr(sender_handler, "delivery_runtime", lambda: service)
    records = [
        KafkaRecord(
            topic="notifications.email",
            partition=2,
            offset=40 + i,
            timestamp=1,
            key=str(m.notification_id).encode(),
            value=m.to_json(),
        )
        for i, m in enumerate(messages)
    ]

    # When the batch is handled
    result = sender_handler.handler(
        build_event(records, bootstrap_servers="b:9098", event_source_arn=ARN), LocalLambdaContext("email-sender")
    )

    # Then exactly the failed record is reported, and the other two were sent once
    assert result == {"batchItemFailures": [{"itemIdentifier": {"partition": "notifications.email-2", "offset": 41}}]}
    assert [m.purchase.order_id for m in sender.sent] == [messages[0].purchase.order_id, messages[2].purchase.order_id]
    failed_status = status.get(messages[1].notification_id)
    assert failed_status is not None and failed_status.channels[0].last_error == "provider timed out"

    # When the ESM redelivers from the failed offset (41 and 42) and the provider recovers
    sender.failing_orders.clear()
    result = sender_handler.handler(
        build_event(records[1:], bootstrap_servers="b:9098", event_source_arn=ARN), LocalLambdaContext("email-sender")
    )

    # Then the retried one is sent and the already-sent one is not sent again
    assert result == {"batchItemFailures": []}
    assert sorted(m.purchase.order_id for m in sender.sent) == sorted(m.purchase.order_id for m in messages)
    assert len(sender.sent) == 3
    assert json.loads(records[0].value)["schema"] == "notification.channel/v1"
    assert uuid.UUID(str(messages[0].notification_id))


def test_every_log_line_about_a_record_carries_its_request_correlation_id(moto_aws, monkeypatch):
    import sender_handler

    # Given two messages of two requests, each with the correlation id ingest gave it (also in the Kafka header),
    # the second failing transiently
    messages = [email_message().model_copy(update={"correlation_id": f"corr-{i}"}) for i in range(2)]
    sender = FlakySender({messages[1].purchase.order_id})
    service = email_service(moto_aws, sender, InMemoryStatusStore())
    monkeypatch.setattr(sender_handler, "delivery_runtime", lambda: service)
    records = [
        message_record(m, i, headers=(("correlation-id", m.correlation_id.encode()),)) for i, m in enumerate(messages)
    ]
    written = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", written)

    # When the batch is handled
    sender_handler.handler(
        build_event(records, bootstrap_servers="b:9098", event_source_arn=ARN), LocalLambdaContext("email-sender")
    )

    # Then the delivery's log line and the failure's log lines each name their own request's correlation id
    lines = [json.loads(line) for line in written.getvalue().splitlines() if line.startswith("{")]
    by_message = {line["message"]: line for line in lines if "notification_id" in line}
    assert by_message["delivered"]["correlation_id"] == "corr-0"
    assert by_message["delivered"]["notification_id"] == str(messages[0].notification_id)
    assert by_message["transient delivery failure, deferred"]["correlation_id"] == "corr-1"
    assert by_message["deferred"]["correlation_id"] == "corr-1"
