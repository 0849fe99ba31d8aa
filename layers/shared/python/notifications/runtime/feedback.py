"""The feedback function's service: the status table, its message index and the suppression list, built once."""

from __future__ import annotations

from functools import cache

from notifications import aws
from notifications.env import EnvModel
from notifications.feedback_service import DynamoFeedbackStatus, FeedbackService
from notifications.message_index import DynamoMessageIndex
from notifications.observability import metrics
from notifications.status import StatusTable
from notifications.suppression import DynamoSuppressionList


class FeedbackSettings(EnvModel):
    """The feedback function writes the status table and the suppression list (no Kafka)."""

    status_table_name: str
    suppression_table_name: str


@cache
def feedback_settings() -> FeedbackSettings:
    return FeedbackSettings.from_env()


def _count(name: str) -> None:
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415

    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


@cache
def feedback_runtime() -> FeedbackService:
    settings = feedback_settings()
    dynamodb = aws.client("dynamodb")
    return FeedbackService(
        status=DynamoFeedbackStatus(StatusTable(settings.status_table_name, dynamodb)),
        index=DynamoMessageIndex(settings.status_table_name, dynamodb),
        suppressions=DynamoSuppressionList(settings.suppression_table_name, dynamodb),
        count=_count,
    )
