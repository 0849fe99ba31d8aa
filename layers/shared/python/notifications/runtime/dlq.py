"""The dead-letter function's service with its status table client, built on first use and kept."""

from __future__ import annotations

from functools import cache

from notifications import aws
from notifications.dlq import DeadLetterService
from notifications.env import EnvModel
from notifications.status import DynamoDeadLetterStatus, StatusTable


class DeadLetterSettings(EnvModel):
    """The dead-letter function only writes the status table (Kafka reaches it through its trigger)."""

    status_table_name: str


@cache
def dead_letter_settings() -> DeadLetterSettings:
    return DeadLetterSettings.from_env()


@cache
def dead_letter_runtime() -> DeadLetterService:
    settings = dead_letter_settings()
    return DeadLetterService(
        status=DynamoDeadLetterStatus(StatusTable(settings.status_table_name, aws.client("dynamodb")))
    )
