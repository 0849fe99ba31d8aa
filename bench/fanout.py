"""Fanout throughput against a raw kafka-python consume-and-produce pipe, and the sender's per-record overhead.

    python -m bench.fanout [--records 3000] [--batch 100]

Both pipes read the same records from the same real broker in batches of ``--batch`` and write the same fan-out
(3 channels per record, acks=all, every acknowledgement awaited before the next batch). The fanout pipe goes
through the Lambda handler with MSK events built by the codec; the raw pipe parses JSON and produces directly.
The sender figure is the handler's per-record cost with a provider that returns at once: once with the
idempotency store in memory (the code's own overhead) and once on moto's in-process DynamoDB.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.common import kafka_for_bench, machine, write_section

CHANNELS = ["email", "sms", "slack"]
ROUNDS = 3  # the first round of each pipe is a warm-up
ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/bench/00000000-0000-0000-0000-000000000000-1"


def _envelope(i: int) -> bytes:
    from notifications.contracts.envelopes import NotificationRequested  # noqa: PLC0415

    return NotificationRequested.model_validate(
        {
            "schema": "notification.requested/v1",
            "notification_id": str(uuid.uuid4()),
            "correlation_id": f"bench-{i}",
            "accepted_at": datetime.now(UTC).isoformat(),
            "channels": CHANNELS,
            "locale": "en",
            "purchase": {
                "order_id": f"B-{i}",
                "purchased_at": "2026-11-21T10:00:00Z",
                "currency": "EUR",
                "total": "49.90",
                "items": [{"sku": "SKU-1", "name": "Coffee beans", "quantity": 2, "unit_price": "24.95"}],
            },
            "customer": {"id": "c-42", "name": "Ada", "email": "ada@example.com", "phone": "+4915112345678"},
        }
    ).to_json()


def _prepare(bootstrap: str, prefix: str, count: int) -> None:
    from kafka import KafkaProducer  # noqa: PLC0415

    from devstack.broker import ensure_topics  # noqa: PLC0415

    ensure_topics(bootstrap, {f"{prefix}requested": 3, **{f"{prefix}{c}": 3 for c in CHANNELS}, f"{prefix}dlq": 1})
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for i in range(count):
        producer.send(f"{prefix}requested", key=str(i).encode(), value=_envelope(i))
    producer.flush()
    producer.close()


def _pipe(bootstrap: str, topic: str, count: int, batch: int, handle: Callable[[list[Any]], None]) -> float:
    """Consume ``count`` records in batches, hand each batch to ``handle``; answer records per second."""
    from kafka import KafkaConsumer  # noqa: PLC0415

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=batch,
    )
    done = 0
    started = time.perf_counter()
    while done < count:
        for records in consumer.poll(timeout_ms=500, max_records=batch).values():
            handle(records)
            done += len(records)
        consumer.commit()
    elapsed = time.perf_counter() - started
    consumer.close()
    return done / elapsed


def fanout_vs_raw(bootstrap: str, count: int, batch: int) -> dict[str, float]:
    from kafka import KafkaProducer  # noqa: PLC0415

    from devstack.lambda_context import LocalLambdaContext  # noqa: PLC0415
    from devstack.msk_events import build_event  # noqa: PLC0415
    from notifications.kafka.msk_event import KafkaRecord  # noqa: PLC0415

    raw_prefix, fan_prefix = f"bench-raw-{uuid.uuid4().hex[:6]}.", f"bench-fan-{uuid.uuid4().hex[:6]}."
    _prepare(bootstrap, raw_prefix, count)
    _prepare(bootstrap, fan_prefix, count)
    # A warm-up round of each pipe over the same records, then the measured rounds in alternating order.

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2)

    def raw(records: list[Any]) -> None:
        futures = []
        for record in records:
            envelope = json.loads(record.value)
            for channel in envelope["channels"]:
                message = {**envelope, "schema": "notification.channel/v1", "channel": channel}
                futures.append(
                    producer.send(f"{raw_prefix}{channel}", key=record.key, value=json.dumps(message).encode())
                )
        for future in futures:
            future.get(timeout=10)

    os.environ.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "TOPIC_PREFIX": fan_prefix,
            "TOPIC_REQUESTED": f"{fan_prefix}requested",
            "TOPIC_DLQ": f"{fan_prefix}dlq",
        }
    )
    import fanout_handler  # noqa: PLC0415

    failures = 0

    def fan(records: list[Any]) -> None:
        nonlocal failures
        event = build_event(map(KafkaRecord.from_consumer, records), bootstrap_servers=bootstrap, event_source_arn=ARN)
        failures += len(fanout_handler.handler(event, LocalLambdaContext("fanout"))["batchItemFailures"])

    raw_runs: list[float] = []
    fan_runs: list[float] = []
    with contextlib.redirect_stdout(io.StringIO()):  # the handler's EMF metric lines
        for _ in range(ROUNDS):
            raw_runs.append(_pipe(bootstrap, f"{raw_prefix}requested", count, batch, raw))
            fan_runs.append(_pipe(bootstrap, f"{fan_prefix}requested", count, batch, fan))
    raw_rps, fan_rps = max(raw_runs[1:]), max(fan_runs[1:])
    producer.close()
    if failures:
        raise SystemExit(f"fanout reported {failures} failures; the figures would be meaningless")
    return {"raw_rps": raw_rps, "fanout_rps": fan_rps, "ratio": fan_rps / raw_rps}


def sender_overhead(records: int) -> dict[str, float]:
    """Per-record cost of the sender handler with an instant provider (no Kafka needed: nothing is dead-lettered)."""
    import boto3  # noqa: PLC0415
    from moto import mock_aws  # noqa: PLC0415

    from devstack import aws_resources  # noqa: PLC0415
    from devstack.lambda_context import LocalLambdaContext  # noqa: PLC0415
    from devstack.msk_events import build_event  # noqa: PLC0415
    from notifications import delivery  # noqa: PLC0415
    from notifications.channels.base import Receipt  # noqa: PLC0415
    from notifications.contracts.envelopes import ChannelMessage, NotificationRequested, channel_messages  # noqa: PLC0415
    from notifications.kafka.msk_event import KafkaRecord  # noqa: PLC0415
    from notifications.registry import Channel  # noqa: PLC0415
    from notifications.settings import SenderSettings  # noqa: PLC0415
    from tests.support import InMemoryStatusStore, MemoryPublisher  # noqa: PLC0415

    class InstantSender:
        channel = Channel("email")

        def send(self, message: ChannelMessage) -> Receipt:
            return Receipt(provider_message_id="instant")

    import sender_handler  # noqa: PLC0415

    settings = SenderSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "CHANNEL": "email",
            "EMAIL_FROM_ADDRESS": "o@shop.example",
            "STATUS_TABLE_NAME": aws_resources.STATUS_TABLE,
            "IDEMPOTENCY_TABLE_NAME": aws_resources.IDEMPOTENCY_TABLE,
        }
    )

    def run(status: Any) -> float:
        service = delivery.DeliveryService(
            settings=settings, sender=InstantSender(), status=status, publisher=MemoryPublisher()
        )
        sender_handler.delivery_runtime = lambda: service  # type: ignore[attr-defined,assignment]
        batch = []
        for i in range(records):
            envelope = NotificationRequested.model_validate_json(_envelope(i))
            message = channel_messages(envelope)[0]
            batch.append(
                KafkaRecord(
                    topic="notifications.email",
                    partition=0,
                    offset=i,
                    timestamp=0,
                    key=str(message.notification_id).encode(),
                    value=message.to_json(),
                )
            )
        events = [
            build_event(batch[start : start + 100], bootstrap_servers="b:9098", event_source_arn=ARN)
            for start in range(0, records, 100)
        ]
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            for event in events:
                result = sender_handler.handler(event, LocalLambdaContext("sender"))
                assert not result["batchItemFailures"], result
        return (time.perf_counter() - started) / records * 1e6

    memory_us = run(InMemoryStatusStore())
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        aws_resources.create_all(session)
        from notifications.status import DynamoSendClaims, StatusTable  # noqa: PLC0415

        moto_us = run(DynamoSendClaims(StatusTable(aws_resources.STATUS_TABLE, session.client("dynamodb"))))
    return {"memory_us": memory_us, "moto_us": moto_us}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    with kafka_for_bench() as bootstrap:
        pipes = fanout_vs_raw(bootstrap, args.records, args.batch)
    sender = sender_overhead(min(args.records, 2000))
    print(f"raw consume-and-produce: {pipes['raw_rps']:8.0f} records/s")
    print(f"fanout handler:          {pipes['fanout_rps']:8.0f} records/s  (ratio {pipes['ratio']:.2f}, goal >= 0.80)")
    print(f"sender overhead:         {sender['memory_us']:8.0f} us/record (idempotency in memory)")
    print(f"                         {sender['moto_us']:8.0f} us/record (idempotency on moto DynamoDB in-process)")
    write_section(
        "fanout",
        f"""
## Fanout and sender

Command: `python -m bench.fanout --records {args.records} --batch {args.batch}` on {machine()}.\nBest of {ROUNDS - 1} measured rounds per pipe after one warm-up round each, alternating, same broker.

| figure | value | baseline | ratio |
| --- | --- | --- | --- |
| fanout, batches of {args.batch}, 3 channels per record | {pipes["fanout_rps"]:.0f} records/s | raw kafka-python consume-and-produce pipe: {pipes["raw_rps"]:.0f} records/s | {pipes["ratio"]:.2f} (goal >= 0.80) |
| sender per-record overhead, provider excluded, idempotency in memory | {sender["memory_us"]:.0f} us | | |
| sender per-record overhead, provider excluded, idempotency on moto DynamoDB (in-process) | {sender["moto_us"]:.0f} us | | |
""",
    )


if __name__ == "__main__":
    main()
