"""Sender domain: deliver one channel message effectively once and say per record what must be retried.

- A send is idempotent on notification id + channel + recipient (Powertools Idempotency on DynamoDB): a
  redelivered record replays the stored receipt instead of calling the provider again.
- Transient provider errors are retried a few times with backoff inside the invocation (while time allows);
  if they persist the record raises, so ``BatchProcessor`` reports it in ``batchItemFailures``.
- Permanent errors and unreadable records go to the DLQ (the record is then done) and mark the status failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
from aws_lambda_powertools.utilities.idempotency.idempotency import idempotent_function
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.channels.base import ChannelSender, Receipt
from notifications.errors import PermanentDeliveryError, PoisonRecordError, TransientDeliveryError
from notifications.kafka.msk_event import KafkaRecord
from notifications.kafka.producer import Publisher, publish_one
from notifications.models import CHANNEL_SCHEMA, ChannelMessage
from notifications.observability import correlation_id_from_headers, logger, metrics
from notifications.records import dead_letter, decode_envelope
from notifications.settings import SenderSettings
from notifications.status import StatusStore

_MAX_IN_PROCESS_WAIT = 2.0  # a longer Retry-After is honoured by the event-source mapping's retry instead
_RESERVE_SECONDS = 5.0  # left for the provider call, status writes and the batch response


def _mark_replay(response: Any, idempotent_data: DataRecord) -> Any:
    """Idempotency response hook: the stored receipt of an earlier send, marked as such."""
    return {**response, "replayed": True}


@dataclass
class DeliveryService:
    settings: SenderSettings
    sender: ChannelSender
    status: StatusStore
    publisher: Publisher
    persistence: BasePersistenceLayer
    _context: LambdaContext | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._config = IdempotencyConfig(
            event_key_jmespath="key",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=self.settings.idempotency_ttl_seconds,
            response_hook=_mark_replay,
        )
        self._send_once = idempotent_function(
            data_keyword_argument="delivery",
            persistence_store=self.persistence,
            config=self._config,
        )(self._send)

    def bind(self, context: LambdaContext | None) -> None:
        """Let in-flight idempotency records expire with the invocation (a crashed send is retried later)."""
        self._context = context
        if context is not None:
            self._config.register_lambda_context(context)

    def _send(self, *, delivery: dict[str, Any], message: ChannelMessage) -> dict[str, Any]:
        attempt = 1
        while True:
            try:
                receipt = self.sender.send(message)
            except TransientDeliveryError as exc:
                delay = self._backoff(attempt, exc)
                if delay is None:
                    raise
                time.sleep(delay)
                attempt += 1
                continue
            return {"provider_message_id": receipt.provider_message_id}

    def _backoff(self, attempt: int, exc: TransientDeliveryError) -> float | None:
        """Seconds to wait before the next attempt, or None to give up and let the event-source mapping retry."""
        if attempt >= self.settings.provider_attempts:
            return None
        delay: float = self.settings.provider_backoff_seconds * float(2 ** (attempt - 1))
        if exc.retry_after is not None:
            if exc.retry_after > _MAX_IN_PROCESS_WAIT:
                return None
            delay = max(delay, exc.retry_after)
        context = self._context
        if context is not None and context.get_remaining_time_in_millis() < (delay + _RESERVE_SECONDS) * 1000:
            return None
        return delay

    def _dead_letter(self, record: KafkaRecord, reason: str) -> None:
        # Raises BrokerUnavailableError when the DLQ write is not acknowledged: the record is then retried.
        publish_one(
            self.publisher,
            dead_letter(record, reason, topic=self.settings.topic_dlq, stage=f"sender-{self.settings.channel.value}"),
        )

    def deliver(self, record: KafkaRecord) -> None:
        """Handle one record; raise to have it (and the rest of its partition) redelivered."""
        # Every log line about this record carries the request's correlation id (from ingest, via Kafka).
        logger.set_correlation_id(correlation_id_from_headers(record.headers))
        try:
            message = decode_envelope(record, ChannelMessage, CHANNEL_SCHEMA)
            if message.channel != self.settings.channel:
                raise PoisonRecordError(f"channel {message.channel.value!r} on the {self.settings.channel.value} topic")
        except PoisonRecordError as exc:
            logger.warning("poison record to DLQ", source=record.partition_id, offset=record.offset, reason=exc.reason)
            metrics.add_metric(name="SenderPoisonRecords", unit="Count", value=1)
            self._dead_letter(record, exc.reason)
            return
        logger.set_correlation_id(message.correlation_id)
        log = {
            "notification_id": str(message.notification_id),
            "channel": message.channel.value,
            "order_id": message.purchase.order_id,
        }
        try:
            stored = self._send_once(delivery={"key": message.delivery_key}, message=message)
        except TransientDeliveryError as exc:
            logger.warning("transient delivery failure, will retry", reason=exc.reason, extra=log)
            metrics.add_metric(name="DeliveryTransientFailures", unit="Count", value=1)
            self._record(self.status.record_failure, message.notification_id, message.channel, exc.reason, final=False)
            raise
        except PermanentDeliveryError as exc:
            logger.warning("permanent delivery failure, to DLQ", reason=exc.reason, extra=log)
            metrics.add_metric(name="DeliveryPermanentFailures", unit="Count", value=1)
            self._dead_letter(record, exc.reason)
            self._record(self.status.record_failure, message.notification_id, message.channel, exc.reason, final=True)
            return
        receipt = Receipt(provider_message_id=stored.get("provider_message_id"))
        self._record(self.status.record_sent, message.notification_id, message.channel, receipt.provider_message_id)
        if stored.get("replayed"):
            logger.info("already delivered, not sent again", provider_message_id=receipt.provider_message_id, extra=log)
            metrics.add_metric(name="RedeliveriesSkipped", unit="Count", value=1)
            return
        logger.info("delivered", provider_message_id=receipt.provider_message_id, extra=log)
        metrics.add_metric(name="Delivered", unit="Count", value=1)

    @staticmethod
    def _record(write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        # The status table is a view: a failed write must not turn a finished delivery into a retry.
        try:
            write(*args, **kwargs)
        except Exception:
            logger.exception("status write failed")
