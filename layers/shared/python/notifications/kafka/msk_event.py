"""Codec for the Lambda Kafka event, in the shape AWS documents for MSK and self-managed Kafka triggers.

    {"eventSource": "aws:kafka", "eventSourceArn": "...", "bootstrapServers": "b-1...:9098,b-2...:9098",
     "records": {"<topic>-<partition>": [{"topic", "partition", "offset", "timestamp", "timestampType",
                                          "key": base64, "value": base64,
                                          "headers": [{"<name>": [byte, byte, ...]}, ...]}]}}

Self-managed Kafka events carry ``"eventSource": "SelfManagedKafka"`` and no ``eventSourceArn``.
Source: https://docs.aws.amazon.com/lambda/latest/dg/with-msk.html (example event).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

EventSource = Literal["aws:kafka", "SelfManagedKafka"]
MSK_SOURCE: EventSource = "aws:kafka"
SELF_MANAGED_SOURCE: EventSource = "SelfManagedKafka"


class MskEventError(ValueError):
    """The event does not have the documented shape."""


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

    @property
    def partition_id(self) -> str:
        """The ``<topic>-<partition>`` name AWS uses in ``records`` and in ``batchItemFailures``."""
        return f"{self.topic}-{self.partition}"

    def header(self, name: str) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def encode_record(record: KafkaRecord) -> dict[str, Any]:
    encoded: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "timestampType": record.timestamp_type,
    }
    if record.key is not None:
        encoded["key"] = _b64(record.key)
    encoded["value"] = _b64(record.value)
    encoded["headers"] = [{name: list(value)} for name, value in record.headers]
    return encoded


def build_event(
    records: Iterable[KafkaRecord],
    *,
    bootstrap_servers: str,
    event_source: EventSource = MSK_SOURCE,
    event_source_arn: str | None = None,
) -> dict[str, Any]:
    """Build the event Lambda would receive for these records, grouped by ``<topic>-<partition>`` in order."""
    event: dict[str, Any] = {"eventSource": event_source}
    if event_source == MSK_SOURCE:
        if not event_source_arn:
            raise MskEventError("an aws:kafka event needs the cluster ARN as eventSourceArn")
        event["eventSourceArn"] = event_source_arn
    event["bootstrapServers"] = bootstrap_servers
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(record.partition_id, []).append(encode_record(record))
    event["records"] = grouped
    return event


def _decode_b64(value: Any, what: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MskEventError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise MskEventError(f"{what} is not valid base64") from exc


def _decode_headers(raw: Any, where: str) -> tuple[tuple[str, bytes], ...]:
    if not isinstance(raw, list):
        raise MskEventError(f"{where}: headers must be a list")
    headers: list[tuple[str, bytes]] = []
    for item in raw:
        if not isinstance(item, dict):
            raise MskEventError(f"{where}: each header must be an object")
        for name, value in item.items():
            if not isinstance(value, list) or not all(isinstance(b, int) and 0 <= b <= 255 for b in value):
                raise MskEventError(f"{where}: header {name!r} must be a list of byte values")
            headers.append((name, bytes(value)))
    return tuple(headers)


def decode_record(raw: Mapping[str, Any]) -> KafkaRecord:
    try:
        topic, partition, offset = raw["topic"], raw["partition"], raw["offset"]
        timestamp = raw["timestamp"]
    except KeyError as exc:
        raise MskEventError(f"record lacks {exc.args[0]!r}") from exc
    if not isinstance(topic, str) or not isinstance(partition, int) or not isinstance(offset, int):
        raise MskEventError("record topic must be a string, partition and offset integers")
    where = f"{topic}-{partition}@{offset}"
    return KafkaRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=int(timestamp),
        timestamp_type=str(raw.get("timestampType", "CREATE_TIME")),
        key=_decode_b64(raw.get("key"), f"{where}: key"),
        value=_decode_b64(raw.get("value"), f"{where}: value"),
        headers=_decode_headers(raw.get("headers", []), where),
    )


def read_event(event: Mapping[str, Any]) -> list[KafkaRecord]:
    """Every record of a Lambda Kafka event, partition by partition, in offset order within a partition."""
    if event.get("eventSource") not in (MSK_SOURCE, SELF_MANAGED_SOURCE):
        raise MskEventError(f"not a Kafka event: eventSource={event.get('eventSource')!r}")
    groups = event.get("records")
    if not isinstance(groups, dict):
        raise MskEventError("records must be an object keyed by <topic>-<partition>")
    records: list[KafkaRecord] = []
    for partition_id, items in groups.items():
        if not isinstance(items, list):
            raise MskEventError(f"records[{partition_id!r}] must be a list")
        for item in items:
            record = decode_record(item)
            if record.partition_id != partition_id:
                raise MskEventError(f"record {record.partition_id} filed under {partition_id}")
            records.append(record)
    return records
