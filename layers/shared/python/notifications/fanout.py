"""Fanout domain: one ``notification.channel`` message per requested channel (of the request's schema version),
acknowledged before success.

Records are sent together and their acknowledgements awaited together, so a batch costs one round trip to the
broker, not one per record. A record whose sends fail is reported failed (the event-source mapping redelivers it
and everything after it; senders deduplicate). A record that can never be read goes to the DLQ instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from notifications.contracts.envelopes import REQUESTED_SCHEMAS, NotificationRequested, channel_messages
from notifications.errors import PoisonRecordError
from notifications.kafka.msk_event import KafkaRecord
from notifications.kafka.producer import OutgoingRecord, Publisher
from notifications.observability import CORRELATION_HEADER, correlation_id_from_headers, logger, metrics
from notifications.records import dead_letter, decode_envelope
from notifications.settings import FanoutSettings

_PASSED_ON = frozenset({"x-amzn-trace-id", "traceparent"})


@dataclass
class FanoutService:
    settings: FanoutSettings
    publisher: Publisher

    def outgoing(self, record: KafkaRecord) -> list[OutgoingRecord]:
        """What one source record turns into: its channel messages, or one dead letter."""
        logger.set_correlation_id(correlation_id_from_headers(record.headers))
        try:
            envelope = decode_envelope(record, NotificationRequested, REQUESTED_SCHEMAS)
        except PoisonRecordError as exc:
            logger.warning("poison record to DLQ", source=record.partition_id, offset=record.offset, reason=exc.reason)
            metrics.add_metric(name="FanoutPoisonRecords", unit="Count", value=1)
            return [dead_letter(record, exc.reason, topic=self.settings.topic_dlq, stage="fanout")]
        logger.set_correlation_id(envelope.correlation_id)
        passed_on = tuple((k, v) for k, v in record.headers if k in _PASSED_ON)
        return [
            OutgoingRecord(
                topic=self.settings.channel_topic(message.channel),
                key=str(message.notification_id).encode(),
                value=message.to_json(),
                headers=(
                    (CORRELATION_HEADER, envelope.correlation_id.encode()),
                    ("schema", message.schema_.encode()),
                    *passed_on,
                ),
            )
            for message in channel_messages(envelope)
        ]

    def process(self, records: Sequence[KafkaRecord]) -> list[KafkaRecord]:
        """Fan out a batch; answer the records that must be retried."""
        plan = [(record, self.outgoing(record)) for record in records]
        results = iter(self.publisher.publish_all([out for _, outs in plan for out in outs]))
        failed: list[KafkaRecord] = []
        for record, outs in plan:
            errors = [err for err in (next(results) for _ in outs) if err is not None]
            if errors:
                logger.set_correlation_id(correlation_id_from_headers(record.headers))
                logger.warning(
                    "fanout sends failed, record will be retried",
                    source=record.partition_id,
                    offset=record.offset,
                    error=f"{type(errors[0]).__name__}: {errors[0]}",
                )
                failed.append(record)
        metrics.add_metric(name="FanoutRecords", unit="Count", value=len(records) - len(failed))
        return failed
