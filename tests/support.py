"""Test helpers shared by every suite: sample payloads, runtime reset, an in-memory publisher and status store."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack.apigw import LOCAL_CALLER, caller_arn
from devstack.msk_events import SAMPLE_PURCHASE
from devstack.stack import StackConfig, free_ports_config
from devstack.template_config import DEFAULT_TEMPLATE
from notifications import aws, settings
from notifications.callers import Caller
from notifications.channels import sms
from notifications.contracts.api import Accepted
from notifications.contracts.keys import NotificationKey, NotificationRef, notification_id_of
from notifications.contracts.status_view import (
    HANDED_OVER,
    ChannelStatus,
    DeliveryState,
    NotificationStatus,
    StatusEvent,
)
from notifications.feedback_service import DynamoFeedbackStatus
from notifications.kafka.producer import OutgoingRecord
from notifications.ledger import Claimed, Entry
from notifications.quotas import Count, Full
from notifications.registry import Channel
from notifications.runtime import dlq, fanout, ingest, sender
from notifications.status import (
    Claim,
    DynamoDeadLetterStatus,
    DynamoSendClaims,
    DynamoStatusView,
    SendClaim,
    StatusTable,
)

ROOT = DEFAULT_TEMPLATE.parent

# An SNS platform endpoint ARN of the form SNS gives one (a Firebase app's endpoint); only the local stack's and
# moto's own endpoints (``devstack.aws_resources.create_push_endpoints``) exist.
SAMPLE_PUSH_ENDPOINT = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/shop-app/5e3e9847-3183-3f18-a7e8-671c3a57d4b3"

SAMPLE_REQUEST: dict[str, Any] = {
    "id": "8f58c11d-ebc2-4ca7-a934-226e2bb6192c",
    "purchase": SAMPLE_PURCHASE,
    "customer": {
        "id": "c-42",
        "name": "Ada",
        "email": "ada@example.com",
        "phone": "+4915112345678",
        "push_endpoint": SAMPLE_PUSH_ENDPOINT,
    },
    "channels": ["email", "sms", "slack"],
    "locale": "en",
}


def address_a_channel_refuses(body: object) -> bool:
    """Whether a generated request body has a well-formed customer address that a channel's own check refuses (the
    SMS fraud limits with the local allowlist, a push endpoint of another account or region). The OpenAPI document
    cannot state those rules, so schemathesis would take the 422 for a valid request rejected: its tests leave such
    bodies out (a hook ``filter_body``)."""
    from pydantic import TypeAdapter, ValidationError

    from notifications.registry import AddressRefusedError, Channel, spec

    customer = body.get("customer") if isinstance(body, dict) else None
    if not isinstance(customer, dict):
        return False
    for channel in Channel:
        declared = spec(channel)
        if declared.address is None or declared.check_address is None:
            continue
        try:
            address = TypeAdapter(declared.address.annotation).validate_python(customer.get(declared.address.field))
            declared.check_address(address)
        except ValidationError:
            continue
        except AddressRefusedError:
            return True
    return False


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


def access_archive(tmp_path_factory: Any) -> Path:
    """Where this test session's stacks keep what their functions were allowed and denied (least privilege)."""
    return Path(tmp_path_factory.getbasetemp()) / "access"


def template_copy(directory: Path, old: str, new: str) -> Path:
    """template.yaml copied into ``directory`` with one exact, unique passage replaced (a change under test)."""
    text = DEFAULT_TEMPLATE.read_text()
    assert text.count(old) == 1, f"the passage to change must occur once in template.yaml: {old!r}"
    path = directory / "template.yaml"
    path.write_text(text.replace(old, new))
    return path


def isolated_stack_config(data_dir: Path, bootstrap: str | None = None) -> StackConfig:
    """A local stack on free ports in its own data dir, retrying quickly (for e2e and chaos tests)."""
    return free_ports_config(
        data_dir,
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


class MemoryDirectory:
    """DestinationDirectory (``notifications.destinations``) in memory: every caller has every destination."""

    def has(self, caller: str, channel: str) -> bool:
        return True


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


class DynamoStatus(DynamoSendClaims, DynamoStatusView, DynamoDeadLetterStatus, DynamoFeedbackStatus):
    """Every adapter of the status table on one table (``notifications.status``): for tests that write a channel's
    row as a sender, the DLQ function or provider feedback does and read it back as GET does."""


class InMemoryStatusStore:
    """SendClaims and StatusView (``notifications.status``) for unit tests and benchmarks that leave DynamoDB out:
    the same claims and transitions as the DynamoDB adapters, in a dict."""

    def __init__(self) -> None:
        self.items: dict[tuple[NotificationRef, Channel], ChannelStatus] = {}
        self.leases: dict[tuple[NotificationRef, Channel], float] = {}

    def _row(self, notification_id: NotificationRef, channel: Channel) -> ChannelStatus:
        return self.items.get((notification_id, channel)) or ChannelStatus(
            channel=channel, state=DeliveryState.ACCEPTED
        )

    def _write(self, notification_id: NotificationRef, channel: Channel, event: str | None, **changes: Any) -> None:
        old = self._row(notification_id, channel)
        now = datetime.now(UTC)
        history = [*old.history, StatusEvent(event=event, at=now, reason=changes.get("last_error"))] if event else None
        self.items[(notification_id, channel)] = old.model_copy(
            update={**changes, "updated_at": now, **({"history": history} if history else {})}
        )

    def claim_send(self, notification_id: NotificationRef, channel: Channel, lease_seconds: float) -> SendClaim:
        row = self._row(notification_id, channel)
        if row.state in HANDED_OVER:
            return SendClaim(Claim.ALREADY_SENT, row.provider_message_id)
        key = (notification_id, channel)
        if self.leases.get(key, 0.0) > time.time():
            return SendClaim(Claim.IN_FLIGHT)
        self.leases[key] = time.time() + lease_seconds
        self._write(notification_id, channel, None, attempts=row.attempts + 1)
        return SendClaim(Claim.CLAIMED)

    def record_sent(self, notification_id: NotificationRef, channel: Channel, provider_message_id: str | None) -> None:
        self.leases.pop((notification_id, channel), None)
        if self._row(notification_id, channel).state not in HANDED_OVER:
            self._write(
                notification_id,
                channel,
                "sent",
                state=DeliveryState.SENT,
                provider_message_id=provider_message_id,
                last_error=None,
            )

    def record_failure(self, notification_id: NotificationRef, channel: Channel, reason: str, *, final: bool) -> None:
        self.leases.pop((notification_id, channel), None)
        row = self._row(notification_id, channel)
        if row.state not in HANDED_OVER:
            state = DeliveryState.FAILED if final else row.state
            self._write(
                notification_id, channel, "failed" if final else "attempt_failed", state=state, last_error=reason[:500]
            )

    def release(self, notification_id: NotificationRef, channel: Channel) -> None:
        if self.leases.pop((notification_id, channel), None) is not None:
            self._write(notification_id, channel, None, attempts=self._row(notification_id, channel).attempts - 1)

    def get(self, notification_id: NotificationRef) -> NotificationStatus | None:
        channels = [s for (nid, _), s in self.items.items() if nid == notification_id]
        return NotificationStatus(id=notification_id_of(notification_id), channels=channels) if channels else None


def record_accepted(dynamodb: Any, key: NotificationKey, channels: Sequence[Channel]) -> Accepted:
    """What ingest writes for a notification it accepted (its ledger item, ``notifications.ledger``), without ingest."""
    from devstack.aws_resources import IDEMPOTENCY_TABLE, STATUS_TABLE
    from notifications.ledger import DynamoLedger

    ledger = DynamoLedger(StatusTable(STATUS_TABLE, dynamodb), IDEMPOTENCY_TABLE, key_ttl_seconds=3600)
    accepted = Accepted(id=key.id, channels=list(channels), correlation_id="corr-test", accepted_at=datetime.now(UTC))
    assert ledger.claim(key, None, "digest", 30, "c-42").taken
    ledger.complete(key, None, accepted)
    return accepted


class InMemoryLedger:
    """Ledger (``notifications.ledger``) in memory: claims, answers and releases in dicts."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    @staticmethod
    def _names(key: NotificationKey, client_key: str | None) -> list[str]:
        return [str(key)] + ([f"{key.caller}#key#{client_key}"] if client_key is not None else [])

    def claim(
        self, key: NotificationKey, client_key: str | None, digest: str, lease_seconds: float, customer_id: str | None
    ) -> Claimed:
        names = self._names(key, client_key)
        found = [self.entries.get(name) for name in names]
        if any(e is not None and (e.accepted is not None or e.lease_until > time.time()) for e in found):
            return Claimed(notification=found[0], client_key=found[1] if client_key is not None else None)
        for name in names:
            self.entries[name] = Entry(digest, None, time.time() + lease_seconds)
        return Claimed()

    def complete(self, key: NotificationKey, client_key: str | None, accepted: Accepted) -> None:
        for name in self._names(key, client_key):
            self.entries[name] = Entry(self.entries[name].digest, accepted, 0.0)

    def release(self, key: NotificationKey, client_key: str | None) -> None:
        for name in self._names(key, client_key):
            if (entry := self.entries.get(name)) is not None and entry.accepted is None:
                del self.entries[name]


class MemoryCounterStore:
    """CounterStore (``notifications.quotas``) in memory: counts per counter, forgetting nothing."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.seconds: dict[str, tuple[int, int]] = {}  # counter -> (second counted, its count)

    def take(self, counts: Sequence[Count]) -> list[Full | None]:
        outcomes: list[Full | None] = []
        for count in counts:
            if self.counts.get(count.counter, 0) >= count.limit:
                outcomes.append(Full.WINDOW)
                continue
            if count.second is not None:
                counted, taken = self.seconds.get(count.counter, (count.second, 0))
                if counted < count.second:
                    counted, taken = count.second, 0
                if taken >= count.second_limit:
                    outcomes.append(Full.SECOND)
                    continue
                self.seconds[count.counter] = (counted, taken + 1)
            self.counts[count.counter] = self.counts.get(count.counter, 0) + 1
            outcomes.append(None)
        return outcomes


def busiest_second(times: list[float]) -> int:
    """The most events inside any one-second window of ``times`` (seconds)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best
