"""Reading records back from Kafka as the codec's ``KafkaRecord`` (for the emulator, tools and tests)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from notifications.kafka.msk_event import KafkaRecord


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[KafkaRecord]], bool],
    where: Callable[[KafkaRecord], bool] = lambda _: True,
    timeout: float = 30.0,
) -> list[KafkaRecord]:
    """Every record of ``topic`` from the beginning that matches ``where``, read until ``until`` holds."""
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: list[KafkaRecord] = []
        deadline = time.monotonic() + timeout
        while not until(found) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                found.extend(r for r in map(KafkaRecord.from_consumer, batch) if where(r))
        return found
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[Any, int]:
    """The end offset of each partition of ``topic`` (what a later ``records_since`` starts from)."""
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return dict(consumer.end_offsets(partitions))
    finally:
        consumer.close()


def records_since(bootstrap: str, since: dict[Any, int]) -> list[Any]:
    """Every record (kafka-python ``ConsumerRecord``) written after the offsets ``since`` up to the current end."""
    from kafka import KafkaConsumer  # noqa: PLC0415

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        consumer.assign(list(since))
        end = consumer.end_offsets(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        found: list[Any] = []
        while any(consumer.position(tp) < end[tp] for tp in since):
            for batch in consumer.poll(timeout_ms=500).values():
                found.extend(batch)
        return found
    finally:
        consumer.close()
