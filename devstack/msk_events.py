"""Lambda Kafka events built from records, byte for byte as the MSK and self-managed Kafka triggers deliver them.

Used by the local event-source-mapping emulator and by tests; functions read events with
``notifications.kafka.msk_event``. Shape: https://docs.aws.amazon.com/lambda/latest/dg/with-msk.html (example event).
Header values are Java bytes, i.e. signed (``ë`` arrives as ``[-61, -85]``; powertools-lambda-python issue 6862,
aws-lambda-rust-runtime issue 688), so they are written signed here too.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any, Literal

from notifications.kafka.msk_event import KafkaRecord

# The MSK cluster the local broker stands for: the event source of every local event, and the ARN the functions'
# kafka-cluster statements are evaluated with (devstack.permissions).
LOCAL_CLUSTER_ARN = (
    "arn:aws:kafka:us-east-1:123456789012:cluster/notifications-local/00000000-0000-0000-0000-000000000000-1"
)

EventSource = Literal["aws:kafka", "SelfManagedKafka"]
MSK_SOURCE: EventSource = "aws:kafka"


def signed_bytes(value: bytes) -> list[int]:
    """``value`` as Java's signed bytes (-128..127), the way Lambda writes Kafka header values."""
    return [b - 256 if b > 127 else b for b in value]


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
    encoded["headers"] = [{name: signed_bytes(value)} for name, value in record.headers]
    return encoded


def build_event(
    records: Iterable[KafkaRecord],
    *,
    bootstrap_servers: str,
    event_source: EventSource = MSK_SOURCE,
    event_source_arn: str | None = None,
) -> dict[str, Any]:
    """The event Lambda would receive for these records, grouped by ``<topic>-<partition>`` in order."""
    event: dict[str, Any] = {"eventSource": event_source}
    if event_source == MSK_SOURCE:
        if not event_source_arn:
            raise ValueError("an aws:kafka event needs the cluster ARN as eventSourceArn")
        event["eventSourceArn"] = event_source_arn
    event["bootstrapServers"] = bootstrap_servers
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(record.partition_id, []).append(encode_record(record))
    event["records"] = grouped
    return event
