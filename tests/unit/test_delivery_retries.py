"""Transient provider errors are retried inside the invocation before the record is reported failed."""

from __future__ import annotations

import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from devstack.lambda_context import LocalLambdaContext
from notifications.channels.base import Receipt
from notifications.delivery import DeliveryService
from notifications.errors import TransientDeliveryError
from notifications.kafka.msk_event import KafkaRecord
from notifications.models import Channel, ChannelMessage
from notifications.settings import SenderSettings
from tests.channel_support import channel_message
from tests.support import InMemoryStatusStore, MemoryPublisher


class FailingTimes:
    channel = Channel.EMAIL

    def __init__(self, failures: int, retry_after: float | None = None) -> None:
        self.failures = failures
        self.retry_after = retry_after
        self.calls = 0

    def send(self, message: ChannelMessage) -> Receipt:
        self.calls += 1
        if self.calls <= self.failures:
            raise TransientDeliveryError("busy", retry_after=self.retry_after)
        return Receipt(provider_message_id="ok")


def service(moto_aws, sender, attempts: int = 3) -> DeliveryService:
    settings = SenderSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "CHANNEL": "email",
            "EMAIL_FROM_ADDRESS": "o@shop.example",
            "STATUS_TABLE_NAME": "s",
            "IDEMPOTENCY_TABLE_NAME": "notifications-idempotency",
            "PROVIDER_ATTEMPTS": str(attempts),
            "PROVIDER_BACKOFF_SECONDS": "0",
        }
    )
    return DeliveryService(
        settings=settings,
        sender=sender,
        status=InMemoryStatusStore(),
        publisher=MemoryPublisher(),
        persistence=DynamoDBPersistenceLayer(
            table_name="notifications-idempotency", boto3_client=moto_aws.client("dynamodb")
        ),
    )


def record(message: ChannelMessage) -> KafkaRecord:
    return KafkaRecord(topic="notifications.email", partition=0, offset=1, timestamp=0, value=message.to_json())


def test_two_transient_failures_then_success_is_one_delivery(moto_aws):
    sender = FailingTimes(failures=2)
    svc = service(moto_aws, sender, attempts=3)
    svc.bind(LocalLambdaContext("sender"))
    svc.deliver(record(channel_message(Channel.EMAIL)))
    assert sender.calls == 3


def test_persistent_transient_failure_raises_after_the_attempts(moto_aws):
    sender = FailingTimes(failures=10)
    svc = service(moto_aws, sender, attempts=3)
    message = channel_message(Channel.EMAIL)
    with pytest.raises(TransientDeliveryError):
        svc.deliver(record(message))
    assert sender.calls == 3
    status = svc.status.get(message.notification_id)
    assert status is not None
    assert status.channels[0].last_error == "busy"


def test_long_retry_after_is_left_to_the_event_source_mapping(moto_aws):
    sender = FailingTimes(failures=1, retry_after=30)
    svc = service(moto_aws, sender, attempts=3)
    with pytest.raises(TransientDeliveryError):
        svc.deliver(record(channel_message(Channel.EMAIL)))
    assert sender.calls == 1


def test_no_retry_when_the_invocation_is_almost_out_of_time(moto_aws):
    sender = FailingTimes(failures=1)
    svc = service(moto_aws, sender, attempts=3)
    svc.bind(LocalLambdaContext("sender", timeout_seconds=1))
    with pytest.raises(TransientDeliveryError):
        svc.deliver(record(channel_message(Channel.EMAIL)))
    assert sender.calls == 1
