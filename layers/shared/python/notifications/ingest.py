"""Ingest domain: accept a notification request durably, once per notification id in its caller's namespace.

A request is accepted only after Kafka acknowledged the ``notification.requested/v2`` record (acks=all), only
within the caller's quotas (``notifications.quotas``), and only if the caller has a destination for each channel
it asks for whose target is operator configuration (Slack, webhook: ``notifications.destinations``). Client
retries replay the first answer; a failed attempt leaves no idempotency record, so the retry goes through.
Idempotency and the status view are one item written twice per request (``notifications.ledger``). Clients are
built in ``notifications.runtime.ingest``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from notifications.contracts.api import Accepted, NotificationRequest
from notifications.contracts.envelopes import NotificationRequested
from notifications.contracts.keys import NotificationKey
from notifications.contracts.status_view import NotificationStatus
from notifications.destinations import DestinationDirectory, DirectoryUnavailableError
from notifications.errors import NotificationError
from notifications.kafka.producer import OutgoingRecord, Publisher, publish_one
from notifications.ledger import Claimed, Ledger
from notifications.observability import CORRELATION_HEADER, logger, metrics
from notifications.quotas import Quotas, QuotaStoreError
from notifications.registry import address_of
from notifications.settings import IngestSettings
from notifications.status import StatusView

if TYPE_CHECKING:
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


class DestinationMissingError(NotificationError):
    """The caller has no destination for these requested channels; nothing is published."""

    def __init__(self, channels: list[str]) -> None:
        super().__init__(", ".join(channels))
        self.channels = channels


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AcceptOutcome:
    accepted: Accepted
    replayed: bool


def destination_channels(request: NotificationRequest) -> list[str]:
    """The requested channels whose target is the caller's destination (operator configuration), not the customer."""
    return [channel.value for channel in request.requested_channels() if address_of(channel) is None]


def recipients(request: NotificationRequest) -> list[tuple[str, str]]:
    """The customer addresses the request's channels deliver to, as (customer field, quota key): each address as
    its kind counts it (``AddressKind.quota_key``)."""
    kinds = {kind.field: kind for channel in request.requested_channels() if (kind := address_of(channel))}
    return [
        (field, kind.quota_key(address))
        for field, kind in kinds.items()
        if (address := getattr(request.customer, field)) is not None
    ]


@dataclass
class IngestService:
    settings: IngestSettings
    publisher: Publisher
    status: StatusView
    quotas: Quotas
    destinations: DestinationDirectory
    clock: Callable[[], datetime] = _now

    def accept(self, request: NotificationRequest, caller: str, correlation_id: str) -> Accepted:
        """Publish a new notification of ``caller``; raise ``DestinationMissingError`` or ``QuotaExceededError``
        (nothing published, no quota spent) when refused."""
        self.check_destinations(request, caller)
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
        metrics.add_metric(name="NotificationsAccepted", unit="Count", value=1)
        return Accepted(
            id=request.id,
            channels=envelope.channels,
            correlation_id=correlation_id,
            accepted_at=envelope.accepted_at,
        )

    def check_destinations(self, request: NotificationRequest, caller: str) -> None:
        """Every requested channel that delivers to the caller's own destination has one (its value is never read)."""
        try:
            missing = [c for c in destination_channels(request) if not self.destinations.has(caller, c)]
        except DirectoryUnavailableError as exc:
            raise StoreUnavailableError(str(exc)) from exc
        if missing:
            raise DestinationMissingError(missing)

    def status_of(self, caller: str, notification_id: UUID) -> NotificationStatus | None:
        """The status of the caller's own notification of this id; None for another caller's."""
        try:
            return self.status.get(NotificationKey(caller, notification_id))
        except Exception as exc:
            raise StoreUnavailableError(f"status read failed: {type(exc).__name__}") from exc


# How long a claim blocks its key when the invocation's remaining time is unknown (outside Lambda).
DEFAULT_LEASE_SECONDS = 30.0


class IdempotentIngest:
    """``IngestService.accept`` once per notification id and per client key, with two store round trips
    (``notifications.ledger``): claim, publish, complete. A refused or replayed request publishes nothing."""

    def __init__(self, service: IngestService, ledger: Ledger) -> None:
        self.service = service
        self.ledger = ledger

    def accept(
        self, request: NotificationRequest, caller: str, key: str, correlation_id: str, context: LambdaContext | None
    ) -> AcceptOutcome:
        """Publish once per id and key, or replay the first answer; raise a typed error for every refusal."""
        # The payload enters the records as a digest of its canonical JSON.
        digest = hashlib.sha256(request.model_dump_json().encode()).hexdigest()
        notification = NotificationKey(caller, request.id)
        client_key = None if key == str(request.id) else key
        # A crashed attempt's claim lapses with its invocation, so it does not block the key for long.
        lease = context.get_remaining_time_in_millis() / 1000 if context is not None else DEFAULT_LEASE_SECONDS
        try:
            claimed = self.ledger.claim(notification, client_key, digest, lease, request.customer.id)
        except Exception as exc:
            raise StoreUnavailableError(f"idempotency claim failed: {type(exc).__name__}") from exc
        if not claimed.taken:
            return AcceptOutcome(accepted=_settle(claimed, digest, key, request), replayed=True)
        try:
            accepted = self.service.accept(request, caller, correlation_id)
        except BaseException:
            # Nothing was accepted: the claim must not block the client's retry.
            try:
                self.ledger.release(notification, client_key)
            except Exception:
                logger.exception("releasing the idempotency claim failed; it lapses with its lease")
            raise
        try:
            self.ledger.complete(notification, client_key, accepted)
        except Exception:
            # Kafka has the record: the request is accepted. Until the claim lapses a retry answers 409 (in flight),
            # then it publishes again, which the senders' claims make harmless; GET shows the channels' rows.
            logger.exception("completing the idempotency record failed after accept", notification_id=str(request.id))
        return AcceptOutcome(accepted=accepted, replayed=False)


def _settle(claimed: Claimed, digest: str, key: str, request: NotificationRequest) -> Accepted:
    """The answer to a request whose claim found earlier records: their 202 (a replay), or the refusal."""
    if claimed.client_key is not None and claimed.client_key.digest != digest:
        raise IdempotencyKeyReusedError(key)
    if claimed.notification is not None and claimed.notification.digest != digest:
        raise NotificationIdReusedError(str(request.id))
    for entry in (claimed.client_key, claimed.notification):
        if entry is not None and entry.accepted is not None:
            return entry.accepted
    raise RequestInFlightError(key)


def build_ingest(
    settings: IngestSettings,
    *,
    publisher: Publisher,
    status: StatusView,
    quotas: Quotas,
    ledger: Ledger,
    destinations: DestinationDirectory,
) -> IdempotentIngest:
    """The ingest service: destinations, quotas, Kafka and the status view, once per notification id and client key."""
    service = IngestService(
        settings=settings, publisher=publisher, status=status, quotas=quotas, destinations=destinations
    )
    return IdempotentIngest(service, ledger)
