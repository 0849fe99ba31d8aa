"""Test helpers shared by every suite: sample payloads, runtime reset, an in-memory publisher and status store."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.apigw import LOCAL_CALLER, caller_arn
from devstack.stack import StackConfig
from notifications import aws, settings
from notifications.callers import Caller
from notifications.channels import sms
from notifications.kafka.producer import OutgoingRecord
from notifications.models import (
    Channel,
    ChannelStatus,
    DeliveryState,
    NotificationRef,
    NotificationStatus,
    notification_id_of,
)
from notifications.quotas import Count
from notifications.runtime import dlq, fanout, ingest, sender

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


def phone_the_sms_channel_refuses(body: object) -> bool:
    """Whether a generated request body has an E.164 ``customer.phone`` that the SMS fraud limits refuse (the local
    allowlist, libphonenumber's plan). The OpenAPI document cannot state that rule, so schemathesis would take the
    422 for a valid request rejected: its tests leave such bodies out (a hook ``filter_body``)."""
    from devstack.aws_resources import SMS_ALLOWED_COUNTRIES
    from notifications.channels.sms.numbers import refusal

    customer = body.get("customer") if isinstance(body, dict) else None
    phone = customer.get("phone") if isinstance(customer, dict) else None
    if not isinstance(phone, str) or not re.fullmatch(r"\+[1-9][0-9]{6,14}", phone):
        return False
    return refusal(phone, frozenset(SMS_ALLOWED_COUNTRIES.split(","))) is not None


def sample_request(**changes: Any) -> dict[str, Any]:
    """A valid request with a fresh id (and fresh order id) unless given, updated with ``changes``."""
    body = copy.deepcopy(SAMPLE_REQUEST)
    body["id"] = str(uuid.uuid4())
    body["purchase"]["order_id"] = f"A-{uuid.uuid4().hex[:8]}"
    body.update(changes)
    return body


def caller_id(name: str = LOCAL_CALLER) -> str:
    """The caller id of the local API's caller ``name`` (``X-Devstack-Caller``; by default the local caller)."""
    return Caller.iam(caller_arn(name)).id


def isolated_stack_config(data_dir: Path, bootstrap: str | None = None) -> StackConfig:
    """A local stack on free ports in its own data dir, retrying quickly (for e2e and chaos tests)."""
    return StackConfig(
        data_dir=data_dir,
        api_port=0,
        broker_port=0,
        moto_port=0,
        dynamodb_port=0,
        slack_port=0,
        webhook_port=0,
        bootstrap=bootstrap,
        retry_backoff_seconds=0.1,
        # One environment per function: tests name, kill and rate-limit "the" sender of a channel.
        concurrency=1,
    )


def reset_runtime() -> None:
    """Forget every per-execution-environment singleton (settings, clients, services)."""
    for factory in (
        settings.ingest_settings,
        settings.fanout_settings,
        settings.sender_settings,
        aws.client,
        aws.provider_client,
        ingest.ingest_runtime,
        fanout.fanout_runtime,
        sender.delivery_runtime,
        dlq.dead_letter_settings,
        dlq.dead_letter_runtime,
        sms.sms_settings,
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


class InMemoryStatusStore:
    """StatusStore for unit tests and benchmarks that leave DynamoDB out."""

    def __init__(self) -> None:
        self.items: dict[tuple[NotificationRef, Channel], ChannelStatus] = {}

    def record_accepted(
        self, notification_id: NotificationRef, channels: Sequence[Channel], *, customer_id: str | None = None
    ) -> None:
        for channel in channels:
            self.items.setdefault(
                (notification_id, channel), ChannelStatus(channel=channel, state=DeliveryState.ACCEPTED)
            )

    def record_sent(self, notification_id: NotificationRef, channel: Channel, provider_message_id: str | None) -> None:
        old = self.items.get((notification_id, channel))
        if old and old.state == DeliveryState.SENT:
            return
        self.items[(notification_id, channel)] = ChannelStatus(
            channel=channel,
            state=DeliveryState.SENT,
            attempts=(old.attempts if old else 0) + 1,
            provider_message_id=provider_message_id,
            updated_at=datetime.now(UTC),
        )

    def record_failure(self, notification_id: NotificationRef, channel: Channel, reason: str, *, final: bool) -> None:
        old = self.items.get((notification_id, channel)) or ChannelStatus(channel=channel, state=DeliveryState.ACCEPTED)
        if old.state == DeliveryState.SENT:
            return
        self.items[(notification_id, channel)] = old.model_copy(
            update={
                "attempts": old.attempts + 1,
                "last_error": reason[:500],
                "updated_at": datetime.now(UTC),
                "state": DeliveryState.FAILED if final else old.state,
            }
        )

    def get(self, notification_id: NotificationRef) -> NotificationStatus | None:
        channels = [s for (nid, _), s in self.items.items() if nid == notification_id]
        return NotificationStatus(id=notification_id_of(notification_id), channels=channels) if channels else None


class MemoryCounterStore:
    """CounterStore (``notifications.quotas``) in memory: counts per counter, forgetting nothing."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def take(self, counts: Sequence[Count]) -> list[bool]:
        taken = []
        for count in counts:
            if self.counts.get(count.counter, 0) >= count.limit:
                taken.append(False)
            else:
                self.counts[count.counter] = self.counts.get(count.counter, 0) + 1
                taken.append(True)
        return taken


def busiest_second(times: list[float]) -> int:
    """The most events inside any one-second window of ``times`` (seconds)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best
