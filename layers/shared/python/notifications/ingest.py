"""Ingest domain: accept a notification request durably and exactly once per idempotency key.

A request is accepted only after Kafka acknowledged the ``notification.requested/v1`` record (acks=all).
Client retries with the same key replay the first answer; a failed attempt leaves no idempotency record, so
the retry goes through.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from uuid import UUID

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.idempotency.idempotency import idempotent_function
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications import aws
from notifications.kafka.producer import KafkaPublisher, OutgoingRecord, Publisher, publish_one
from notifications.models import Accepted, NotificationRequest, NotificationRequested, NotificationStatus
from notifications.observability import CORRELATION_HEADER, logger, metrics
from notifications.settings import IngestSettings, ingest_settings
from notifications.status import DynamoStatusStore, StatusStore

TRACE_HEADER = "x-amzn-trace-id"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AcceptOutcome:
    accepted: Accepted
    replayed: bool


@dataclass
class IngestService:
    settings: IngestSettings
    publisher: Publisher
    status: StatusStore
    clock: Callable[[], datetime] = _now

    def accept(self, request: NotificationRequest, correlation_id: str) -> Accepted:
        envelope = NotificationRequested(
            notification_id=request.id,
            correlation_id=correlation_id,
            accepted_at=self.clock(),
            channels=request.requested_channels(),
            locale=request.locale,
            purchase=request.purchase,
            customer=request.customer,
        )
        headers = [(CORRELATION_HEADER, correlation_id.encode()), ("schema", b"notification.requested/v1")]
        trace = os.environ.get("_X_AMZN_TRACE_ID")
        if trace:
            headers.append((TRACE_HEADER, trace.encode()))
        publish_one(
            self.publisher,
            OutgoingRecord(
                topic=self.settings.topic_requested,
                key=str(request.id).encode(),
                value=envelope.to_json(),
                headers=tuple(headers),
            ),
        )
        # Durable from here on. The status row is a view; failing to write it must not un-accept the request.
        try:
            self.status.record_accepted(request.id, envelope.channels)
        except Exception:
            logger.exception("status write failed after accept", notification_id=str(request.id))
        metrics.add_metric(name="NotificationsAccepted", unit="Count", value=1)
        return Accepted(
            id=request.id,
            channels=envelope.channels,
            correlation_id=correlation_id,
            accepted_at=envelope.accepted_at,
        )

    def status_of(self, notification_id: UUID) -> NotificationStatus | None:
        return self.status.get(notification_id)


def _mark_replay(response: Any, idempotent_data: DataRecord) -> Any:
    return {**response, "replayed": True}


class IdempotentIngest:
    """Wraps ``IngestService.accept`` in Powertools Idempotency keyed by the client's key, checking the payload."""

    def __init__(self, service: IngestService, persistence: BasePersistenceLayer) -> None:
        self.service = service
        self._config = IdempotencyConfig(
            event_key_jmespath="key",
            payload_validation_jmespath="payload",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=service.settings.idempotency_ttl_seconds,
            response_hook=_mark_replay,
        )
        self._accept = idempotent_function(
            data_keyword_argument="submission",
            persistence_store=persistence,
            config=self._config,
        )(self._accept_submission)

    def _accept_submission(self, *, submission: dict[str, Any], request: NotificationRequest) -> dict[str, Any]:
        accepted = self.service.accept(request, submission["correlation_id"])
        return accepted.model_dump(mode="json")

    def accept(
        self, request: NotificationRequest, key: str, correlation_id: str, context: LambdaContext | None
    ) -> AcceptOutcome:
        if context is not None:
            self._config.register_lambda_context(context)
        submission = {"key": key, "payload": request.model_dump(mode="json"), "correlation_id": correlation_id}
        result = dict(self._accept(submission=submission, request=request))
        replayed = bool(result.pop("replayed", False))
        return AcceptOutcome(accepted=Accepted.model_validate(result), replayed=replayed)


@cache
def ingest_runtime() -> IdempotentIngest:
    """The ingest service with its clients, created once per execution environment."""
    settings = ingest_settings()
    dynamodb = aws.client("dynamodb")
    service = IngestService(
        settings=settings,
        publisher=KafkaPublisher(settings),
        status=DynamoStatusStore(settings.status_table_name, dynamodb),
    )
    persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table_name, boto3_client=dynamodb)
    return IdempotentIngest(service, persistence)
