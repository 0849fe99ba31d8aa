"""A sender function's service: its channel's provider adapter, the stores and the DLQ producer, built once."""

from __future__ import annotations

from functools import cache

from notifications import aws, channels
from notifications.delivery import DeliveryService
from notifications.kafka.producer import KafkaPublisher
from notifications.settings import sender_settings
from notifications.status import DynamoSendClaims, StatusTable


@cache
def delivery_runtime() -> DeliveryService:
    settings = sender_settings()
    return DeliveryService(
        settings=settings,
        sender=channels.create_sender(settings),
        status=DynamoSendClaims(StatusTable(settings.status_table_name, aws.client("dynamodb"))),
        publisher=KafkaPublisher(settings),
    )
