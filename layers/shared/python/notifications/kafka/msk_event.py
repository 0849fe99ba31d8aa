"""Kafka records as a Lambda Kafka trigger delivers them, read through Powertools' ``KafkaEventRecord``.

The event shape (MSK ``"eventSource": "aws:kafka"``, self-managed ``"SelfManagedKafka"``):

    {"eventSource": "aws:kafka", "eventSourceArn": "...", "bootstrapServers": "b-1...:9098,b-2...:9098",
     "records": {"<topic>-<partition>": [{"topic", "partition", "offset", "timestamp", "timestampType",
                                          "key": base64, "value": base64,
                                          "headers": [{"<name>": [byte, byte, ...]}, ...]}]}}

Source: https://docs.aws.amazon.com/lambda/latest/dg/with-msk.html (example event).

Header values arrive as Java bytes, i.e. *signed* (``ë`` = ``[-61, -85]``): powertools-lambda-python issue 6862
and aws-lambda-rust-runtime issue 688. Both signed and unsigned values are read (as Powertools' ``decoded_headers``
does since that issue), from the list itself rather than that dict, so order and repeated names survive.

A record that cannot be read does not fail its batch: it becomes a stand-in ``KafkaRecord`` whose ``undecodable``
says why and whose value is the record as delivered (JSON), so the normal poison path dead-letters it alone.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.data_classes.kafka_event import KafkaEvent, KafkaEventRecord

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

KAFKA_EVENT_SOURCES = frozenset({"aws:kafka", "SelfManagedKafka"})
_TIMESTAMP_TYPES = {0: "CREATE_TIME", 1: "LOG_APPEND_TIME"}  # a Kafka record's timestamp type, by its number


class MskEventError(ValueError):
    """The event as a whole does not have the documented shape (a single bad record is not this)."""


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One Kafka record as a Lambda Kafka event carries it, with key, value and headers as bytes."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = field(default=())
    timestamp_type: str = "CREATE_TIME"
    # Why the delivered record could not be read; ``value`` is then the record's JSON as delivered.
    undecodable: str | None = None

    @classmethod
    def from_consumer(cls, record: Any) -> KafkaRecord:
        """A kafka-python ``ConsumerRecord`` as a Lambda Kafka event carries it (tools that read topics themselves)."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp=int(record.timestamp),
            timestamp_type=_TIMESTAMP_TYPES.get(record.timestamp_type, "CREATE_TIME"),
            key=record.key,
            value=record.value,
            headers=tuple((name, value or b"") for name, value in record.headers),
        )

    @property
    def partition_id(self) -> str:
        """The ``<topic>-<partition>`` name AWS uses in ``records`` and in ``batchItemFailures``."""
        return f"{self.topic}-{self.partition}"

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise TypeError("headers must be a list of objects")
    headers: list[tuple[str, bytes]] = []
    for item in raw:
        for name, value in item.items():
            if not isinstance(value, list) or not all(isinstance(b, int) and -128 <= b <= 255 for b in value):
                raise TypeError(f"header {name!r} must be a list of byte values")
            headers.append((name, bytes(b & 0xFF for b in value)))  # signed or unsigned
    return tuple(headers)


def _base64(value: Any) -> bytes | None:
    # Strict, unlike ``KafkaEventRecord.decoded_value``: a value that is not base64 is corrupt, not empty.
    return None if value is None else base64.b64decode(value, validate=True)


def kafka_record(record: KafkaEventRecord) -> KafkaRecord:
    """The record with its bytes decoded, or a stand-in naming why it cannot be read."""
    raw = record.raw_event
    try:
        topic, partition, offset = record.topic, record.partition, record.offset
        if not isinstance(topic, str) or not isinstance(partition, int) or not isinstance(offset, int):
            raise TypeError("topic must be a string, partition and offset integers")
        return KafkaRecord(
            topic=topic,
            partition=partition,
            offset=offset,
            timestamp=int(record.timestamp),
            timestamp_type=str(raw.get("timestampType", "CREATE_TIME")),
            key=_base64(record.key),
            value=_base64(raw.get("value")),
            headers=_headers(raw.get("headers", [])),
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        return _stand_in(raw, f"undecodable record: {type(exc).__name__}: {exc}")


def _stand_in(raw: Mapping[str, Any], reason: str) -> KafkaRecord:
    def number(name: str) -> int:
        value = raw.get(name)
        return value if isinstance(value, int) else -1

    topic = raw.get("topic")
    return KafkaRecord(
        topic=topic if isinstance(topic, str) else "unknown",
        partition=number("partition"),
        offset=number("offset"),
        timestamp=number("timestamp"),
        value=json.dumps(raw, default=str).encode(),
        undecodable=reason[:500],
    )


def read_event(event: Mapping[str, Any]) -> list[KafkaRecord]:
    """Every record of a Lambda Kafka event, partition by partition, in offset order within a partition."""
    if event.get("eventSource") not in KAFKA_EVENT_SOURCES:
        raise MskEventError(f"not a Kafka event: eventSource={event.get('eventSource')!r}")
    groups = event.get("records")
    if not isinstance(groups, dict) or not all(isinstance(items, list) for items in groups.values()):
        raise MskEventError("records must be an object of lists keyed by <topic>-<partition>")
    return [kafka_record(record) for record in KafkaEvent(dict(event)).records]


def batch_response(failed: Iterable[KafkaRecord]) -> PartialItemFailureResponse:
    """The partial batch response naming the ``failed`` records, for a Kafka trigger with ``ReportBatchItemFailures``.

    ``{"batchItemFailures": [{"itemIdentifier": {"partition": "<topic>-<n>", "offset": <n>}}]}``: the event-source
    mapping retries only those records, each partition from its lowest failed offset
    (https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html). The shape and its types are
    Powertools' (``BatchProcessor(EventType.Kafka)`` answers the same), for handlers that process a batch as a whole
    rather than record by record.
    """
    return {
        "batchItemFailures": [
            {"itemIdentifier": {"partition": record.partition_id, "offset": record.offset}} for record in failed
        ]
    }
