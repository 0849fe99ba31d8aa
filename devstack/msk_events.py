"""Lambda Kafka events built from records, byte for byte as the MSK and self-managed Kafka triggers deliver them.

Used by the local event-source-mapping emulator and by tests; functions read events with
``notifications.kafka.msk_event``. Shape: https://docs.aws.amazon.com/lambda/latest/dg/with-msk.html (example event).
Header values are Java bytes, i.e. signed (``ë`` arrives as ``[-61, -85]``; powertools-lambda-python issue 6862,
aws-lambda-rust-runtime issue 688), so they are written signed here too.
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from notifications.contracts.envelopes import CHANNEL_SCHEMA_V2, ChannelMessage
from notifications.kafka.msk_event import KafkaRecord
from notifications.observability import CORRELATION_HEADER
from notifications.registry import Channel, address_of

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


# ------------------------------------------------------------------------------------------------ sample events

SAMPLE_CLUSTER_ARN = (
    "arn:aws:kafka:eu-central-1:123456789012:cluster/notifications/6d7e8f90-1a2b-3c4d-5e6f-7a8b9c0d1e2f-3"
)
SAMPLE_BOOTSTRAP = (
    "b-1.notifications.abc123.c3.kafka.eu-central-1.amazonaws.com:9098,"
    "b-2.notifications.abc123.c3.kafka.eu-central-1.amazonaws.com:9098"
)


# The purchase of every sample (events/, and the tests' sample request).
SAMPLE_PURCHASE = {
    "order_id": "A-1001",
    "purchased_at": "2026-11-21T10:00:00Z",
    "currency": "EUR",
    "total": "49.90",
    "items": [{"sku": "SKU-1", "name": "Coffee beans", "quantity": 2, "unit_price": "24.95"}],
}


def sender_sample(channel: Channel) -> dict[str, Any]:
    """The sample MSK event of ``channel``'s sender (``events/sender_<channel>_msk.json``): one channel message of
    the sample purchase; a channel that delivers to the customer has its address kind's example."""
    kind = address_of(channel)
    customer = {"id": "c-42", "name": "Ada", **({kind.field: kind.example} if kind else {})}
    message = ChannelMessage.model_validate(
        {
            "schema": CHANNEL_SCHEMA_V2,
            "caller": "c-5ildeqvyylbvfjexkzlcu5da2w",
            "notification_id": "8f58c11d-ebc2-4ca7-a934-226e2bb6192c",
            "correlation_id": "5b0e7f1c-2f57-4a1e-9d0e-3c1f4b1a2b3c",
            "channel": channel.value,
            "recipient": kind.example if kind else None,
            "locale": "en",
            "purchase": SAMPLE_PURCHASE,
            "customer": customer,
        }
    )
    record = KafkaRecord(
        topic=f"notifications.{channel.value}",
        partition=1,
        offset=7,
        timestamp=1795255201500,
        timestamp_type="CREATE_TIME",
        key=str(message.notification_id).encode(),
        value=message.to_json(),
        headers=((CORRELATION_HEADER, message.correlation_id.encode()), ("schema", message.schema_.encode())),
    )
    return build_event([record], bootstrap_servers=SAMPLE_BOOTSTRAP, event_source_arn=SAMPLE_CLUSTER_ARN)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.msk_events", description="Print the sample MSK event of a channel's sender."
    )
    parser.add_argument("channel", choices=[channel.value for channel in Channel])
    args = parser.parse_args(argv)
    print(json.dumps(sender_sample(Channel(args.channel)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
