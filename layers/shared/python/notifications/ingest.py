"""Ingest domain: accept a notification request durably, once per notification id in its caller's namespace.

A request is accepted only after Kafka acknowledged the ``notification.requested/v2`` record (acks=all), and only
within the caller's quotas (``notifications.quotas``). Client retries replay the first answer; a failed attempt
leaves no idempotency record, so the retry goes through.

Powertools Idempotency (and with it boto3) is imported when the service is first built, not at import: the
handler module stays cheap to import. Clients are built in ``notifications.runtime.ingest``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from notifications.errors import NotificationError
from notifications.kafka.producer import OutgoingRecord, Publisher, publish_one
from notifications.models import (
    Accepted,
    NotificationKey,
    NotificationRequest,
    NotificationRequested,
    NotificationStatus,
    customer_address,
)
from notifications.observability import CORRELATION_HEADER, logger, metrics
from notifications.quotas import Quotas, QuotaStoreError
from notifications.settings import IngestSettings
from notifications.status import StatusStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

TRACE_HEADER = "x-amzn-trace-id"
SCHEMA_HEADER = "schema"


class IdempotencyKeyReusedError(NotificationError):
    """The idempotency key was used before with a different payload."""


class NotificationIdReusedError(NotificationError):
    """The notification id was used before, by the same caller, with a different payload."""


class RequestInFlightError(NotificationError):
    """A request with the same idempotency key is being processed right now."""


class StoreUnavailableError(NotificationError):
    """The idempotency or status store failed; nothing may be reported as accepted."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AcceptOutcome:
    accepted: Accepted
    replayed: bool


def recipients(request: NotificationRequest) -> list[tuple[str, str]]:
    """The customer addresses the request's channels deliver to, as (customer field, address)."""
    fields = dict.fromkeys(f for channel in request.requested_channels() if (f := customer_address(channel)))
    return [(f, address) for f in fields if (address := getattr(request.customer, f)) is not None]


@dataclass
class IngestService:
    settings: IngestSettings
    publisher: Publisher
    status: StatusStore
    quotas: Quotas
    clock: Callable[[], datetime] = _now

    def accept(self, request: NotificationRequest, caller: str, correlation_id: str) -> Accepted:
        """Publish a new notification of ``caller``; raise ``QuotaExceededError`` (nothing published) when over."""
        try:
            self.quotas.charge(caller, recipients(request))
        except QuotaStoreError as exc:
            raise StoreUnavailableError(str(exc)) from exc
        envelope = NotificationRequested(
            caller=caller,
            notification_id=request.id,
            correlation_id=correlation_id,
            accepted_at=self.clock(),
            channels=request.requested_channels(),
            locale=request.locale,
            purchase=request.purchase,
            customer=request.customer,
        )
        headers = [(CORRELATION_HEADER, correlation_id.encode()), (SCHEMA_HEADER, envelope.schema_.encode())]
        # Set by the Lambda runtime for each invocation (not configuration).
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
            self.status.record_accepted(envelope.key, envelope.channels, customer_id=envelope.customer.id)
        except Exception:
            logger.exception("status write failed after accept", notification_id=str(request.id))
        metrics.add_metric(name="NotificationsAccepted", unit="Count", value=1)
        return Accepted(
            id=request.id,
            channels=envelope.channels,
            correlation_id=correlation_id,
            accepted_at=envelope.accepted_at,
        )

    def status_of(self, caller: str, notification_id: UUID) -> NotificationStatus | None:
        """The status of the caller's own notification of this id; None for another caller's."""
        try:
            return self.status.get(NotificationKey(caller, notification_id))
        except Exception as exc:
            raise StoreUnavailableError(f"status read failed: {type(exc).__name__}") from exc


def _mark_replay(response: Any, idempotent_data: DataRecord) -> Any:
    return {**response, "replayed": True}


class IdempotentIngest:
    """``IngestService.accept`` under Powertools Idempotency, in the caller's namespace, checking the payload.

    One record per notification id makes an id one notification: the same id with another payload is refused,
    whatever the idempotency key. A client's own ``Idempotency-Key`` (other than the id) gets a record of its own
    around that one: the same key with another payload (another id included) is refused too. Each record has its
    own persistence layer, as Powertools configures a layer for the one function it decorates.
    """

    def __init__(self, service: IngestService, persistence: Callable[[], BasePersistenceLayer]) -> None:
        from aws_lambda_powertools.utilities.idempotency import (  # noqa: PLC0415 - see the module docstring
            IdempotencyConfig,
            exceptions,
            idempotent_function,
        )

        self.service = service
        self._errors = exceptions
        self._config = IdempotencyConfig(
            event_key_jmespath="key",
            payload_validation_jmespath="payload",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=service.settings.idempotency_ttl_seconds,
            response_hook=_mark_replay,
        )
        self._once_per_id = idempotent_function(
            data_keyword_argument="submission", persistence_store=persistence(), config=self._config
        )(self._accept_submission)
        self._once_per_key = idempotent_function(
            data_keyword_argument="submission", persistence_store=persistence(), config=self._config
        )(self._accept_once_per_id)

    def _accept_submission(
        self, *, submission: dict[str, Any], request: NotificationRequest, caller: str
    ) -> dict[str, Any]:
        accepted = self.service.accept(request, caller, submission["correlation_id"])
        return accepted.model_dump(mode="json")

    def _accept_once_per_id(
        self, *, submission: dict[str, Any], request: NotificationRequest, caller: str, by_id: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            return dict(self._once_per_id(submission=by_id, request=request, caller=caller))
        except self._errors.IdempotencyValidationError as exc:
            raise NotificationIdReusedError(str(request.id)) from exc

    def accept(
        self, request: NotificationRequest, caller: str, key: str, correlation_id: str, context: LambdaContext | None
    ) -> AcceptOutcome:
        """Publish once per id and key, or replay the first answer; raise a typed error for every refusal."""
        if context is not None:
            # In-flight records expire with this invocation, so a crashed attempt does not block the key for long.
            self._config.register_lambda_context(context)
        # The payload enters the idempotency records as a digest of its canonical JSON: Powertools deep-copies and
        # hashes the data it is given on every call, and a 64-character digest is cheaper to copy than the request.
        digest = hashlib.sha256(request.model_dump_json().encode()).hexdigest()
        by_id = {"key": f"{caller}#id#{request.id}", "payload": digest, "correlation_id": correlation_id}
        errors = self._errors
        try:
            if key == str(request.id):
                result = dict(self._once_per_id(submission=by_id, request=request, caller=caller))
            else:
                by_key = {**by_id, "key": f"{caller}#key#{key}"}
                result = dict(self._once_per_key(submission=by_key, request=request, caller=caller, by_id=by_id))
        except errors.IdempotencyValidationError as exc:
            raise (NotificationIdReusedError if key == str(request.id) else IdempotencyKeyReusedError)(key) from exc
        except errors.IdempotencyAlreadyInProgressError as exc:
            raise RequestInFlightError(key) from exc
        except (errors.IdempotencyPersistenceLayerError, errors.IdempotencyInconsistentStateError) as exc:
            raise StoreUnavailableError(str(exc)) from exc
        replayed = bool(result.pop("replayed", False))
        return AcceptOutcome(accepted=Accepted.model_validate(result), replayed=replayed)


def build_ingest(
    settings: IngestSettings,
    publisher: Publisher,
    status: StatusStore,
    quotas: Quotas,
    persistence: Callable[[], BasePersistenceLayer],
) -> IdempotentIngest:
    """The ingest service; ``persistence`` makes a Powertools persistence layer (it is called twice)."""
    service = IngestService(settings=settings, publisher=publisher, status=status, quotas=quotas)
    return IdempotentIngest(service, persistence)
