"""Test helpers shared by every suite: sample payloads, runtime reset, an in-memory publisher."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devstack.stack import StackConfig
from notifications import aws, delivery, fanout, ingest, settings
from notifications.kafka.producer import OutgoingRecord

SAMPLE_REQUEST: dict[str, Any] = {
    "id": "8f58c11d-ebc2-4ca7-a934-226e2bb6192c",
    "purchase": {
        "order_id": "A-1001",
        "purchased_at": "2026-11-21T10:00:00Z",
        "currency": "EUR",
        "total": "49.90",
        "items": [{"sku": "SKU-1", "name": "Coffee beans", "quantity": 2, "unit_price": "24.95"}],
    },
    "customer": {"id": "c-42", "name": "Ada", "email": "ada@example.com", "phone": "+4915112345678"},
    "channels": ["email", "sms", "slack"],
    "locale": "en",
}


def sample_request(**changes: Any) -> dict[str, Any]:
    """A valid request with a fresh id (and fresh order id) unless given, updated with ``changes``."""
    body = copy.deepcopy(SAMPLE_REQUEST)
    body["id"] = str(uuid.uuid4())
    body["purchase"]["order_id"] = f"A-{uuid.uuid4().hex[:8]}"
    body.update(changes)
    return body


def isolated_stack_config(data_dir: Path, bootstrap: str | None = None) -> StackConfig:
    """A local stack on free ports in its own data dir, retrying quickly (for e2e and chaos tests)."""
    return StackConfig(
        data_dir=data_dir,
        api_port=0,
        broker_port=0,
        moto_port=0,
        slack_port=0,
        webhook_port=0,
        bootstrap=bootstrap,
        retry_backoff_seconds=0.1,
    )


def reset_runtime() -> None:
    """Forget every per-execution-environment singleton (settings, clients, services)."""
    for factory in (
        settings.ingest_settings,
        settings.fanout_settings,
        settings.sender_settings,
        aws.client,
        ingest.ingest_runtime,
        fanout.fanout_runtime,
        delivery.delivery_runtime,
    ):
        factory.cache_clear()


class MemoryPublisher:
    """Publisher port in memory; ``fail_topics`` makes every send to those topics fail."""

    def __init__(self, fail_topics: Sequence[str] = ()) -> None:
        self.records: list[OutgoingRecord] = []
        self.fail_topics = set(fail_topics)

    def publish_all(self, records: Sequence[OutgoingRecord]) -> list[Exception | None]:
        results: list[Exception | None] = []
        for record in records:
            if record.topic in self.fail_topics:
                results.append(TimeoutError(f"no ack from {record.topic}"))
            else:
                self.records.append(record)
                results.append(None)
        return results

    def on(self, topic: str) -> list[OutgoingRecord]:
        return [r for r in self.records if r.topic == topic]
