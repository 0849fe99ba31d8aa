"""The sender's fair share between callers: a congested batch sends each caller's share of the horizon's slots and
puts the other records back on the channel's topic (they yield their turn), untouched: no claim, no attempt, no
failure, so they are delivered once when they come round and never count towards the outage budget."""

from __future__ import annotations

from collections import Counter

import pytest

from notifications.channels.base import Receipt
from notifications.contracts.envelopes import ChannelMessage, NotificationRequested, channel_messages
from notifications.deferral import YIELD_REASON
from notifications.delivery import DeliveryService
from notifications.errors import TransientDeliveryError
from notifications.kafka.msk_event import KafkaRecord
from notifications.registry import Channel
from notifications.settings import SenderSettings
from tests.channel_support import message_record, requested
from tests.support import InMemoryStatusStore, MemoryPublisher

A = "c-" + "a" * 26
B = "c-" + "b" * 26
TOPIC = "notifications.email"


class Provider:
    """The email provider stand-in: every message it took, in order."""

    channel = Channel.EMAIL

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.sent: list[ChannelMessage] = []

    def send(self, message: ChannelMessage) -> Receipt:
        if self.failures:
            self.failures -= 1
            raise TransientDeliveryError("provider down")
        self.sent.append(message)
        return Receipt(provider_message_id=f"p-{len(self.sent)}")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def service(provider: Provider, clock: Clock, **env: str) -> DeliveryService:
    settings = SenderSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "CHANNEL": "email",
            "STATUS_TABLE_NAME": "s",
            "SEND_RATE_PER_SECOND": "10",  # one partition: 20 slots in the 2 s horizon
            "TOPIC_PARTITIONS": "1",
            "PROVIDER_ATTEMPTS": "1",
            **env,
        }
    )
    return DeliveryService(
        settings=settings,
        sender=provider,
        status=InMemoryStatusStore(),
        publisher=MemoryPublisher(),
        wall_clock=clock.time,
        sleep=clock.sleep,
    )


def message_of(caller: str) -> ChannelMessage:
    base = requested(channels=["email"])
    return channel_messages(NotificationRequested(caller=caller, **base.model_dump(exclude={"schema_", "caller"})))[0]


def batch(callers: list[str], first_offset: int = 0) -> list[KafkaRecord]:
    return [message_record(message_of(c), first_offset + i) for i, c in enumerate(callers)]


def come_round(svc: DeliveryService, first_offset: int) -> list[KafkaRecord]:
    """The records put back on the topic, as the event-source mapping delivers them when their turn comes."""
    out = svc.publisher.on(TOPIC)
    svc.publisher.records.clear()
    return [
        KafkaRecord(
            topic=TOPIC, partition=0, offset=first_offset + i, timestamp=0, key=r.key, value=r.value, headers=r.headers
        )
        for i, r in enumerate(out)
    ]


def callers_of(messages: list[ChannelMessage]) -> Counter[str | None]:
    return Counter(m.caller for m in messages)


def test_a_congested_batch_sends_each_callers_share_and_puts_the_rest_back_untouched():
    # Given a batch with 45 records of A and 5 of B on a partition with 20 slots in its horizon
    provider, clock = Provider(), Clock()
    svc = service(provider, clock)
    records = batch([A] * 45 + [B] * 5)
    start = clock.now

    # When the batch is delivered
    assert svc.deliver_batch(records) == []

    # Then B's five and A's share (half of 20) were sent, and A's other 35 went back on the topic
    assert callers_of(provider.sent) == {B: 5, A: 10}
    back = svc.publisher.on(TOPIC)
    assert len(back) == 35
    headers = dict(back[0].headers)
    # ... due at once, with no attempt counted and no first failure (no outage budget is running)
    assert headers["retry-attempt"] == b"0"
    assert int(headers["retry-not-before"]) / 1000 == pytest.approx(start, abs=0.001)
    assert headers["retry-reason"] == YIELD_REASON.encode()
    assert "retry-first-failure" not in headers
    # ... and their status rows were not touched: no claim, no failure
    yielded = {r.key for r in back}
    for record in records:
        if record.key in yielded:
            assert svc.status.get(message_of_record(record).key) is None
    assert svc.publisher.on("notifications.dlq") == []


def message_of_record(record: KafkaRecord) -> ChannelMessage:
    return ChannelMessage.model_validate_json(record.value or b"")


def test_records_that_yielded_are_delivered_once_when_they_come_round():
    # Given A's records that yielded their turn, and the original batch redelivered too (as after a crash)
    provider, clock = Provider(), Clock()
    svc = service(provider, clock)
    records = batch([A] * 45 + [B] * 5)
    svc.deliver_batch(records)

    # When the deferred copies come round (twice the horizon later) and then the originals once more
    offset = 100
    while copies := come_round(svc, offset):
        clock.now += 4
        assert svc.deliver_batch(copies) == []
        offset += len(copies)
    clock.now += 4
    svc.deliver_batch(records)
    while copies := come_round(svc, offset):
        clock.now += 4
        svc.deliver_batch(copies)
        offset += len(copies)

    # Then the provider got every notification exactly once
    assert Counter(m.notification_id for m in provider.sent) == Counter(
        message_of_record(r).notification_id for r in records
    )


def test_yielding_for_longer_than_the_outage_budget_never_dead_letters():
    # Given an outage budget of one minute, and A's records yielding their turn to B's again and again
    provider, clock = Provider(), Clock()
    svc = service(provider, clock, OUTAGE_BUDGET_SECONDS="60")
    svc.deliver_batch(batch([A] * 45 + [B] * 5))
    offset = 100
    for _ in range(5):
        clock.now += 120  # two budgets
        copies = come_round(svc, offset)
        offset += len(copies)
        svc.deliver_batch([*batch([B] * 30, offset), *copies])
        offset += 30

    # Then nothing was dead-lettered, and everything was sent in the end
    while copies := come_round(svc, offset):
        clock.now += 120
        svc.deliver_batch(copies)
        offset += len(copies)
    assert svc.publisher.on("notifications.dlq") == []
    assert callers_of(provider.sent) == {A: 45, B: 155}


def test_a_record_in_an_outage_that_yields_keeps_its_attempts_and_first_failure():
    # Given a record deferred after a failed attempt (attempt 1, its first failure ten minutes ago)
    provider, clock = Provider(), Clock()
    svc = service(provider, clock)
    first = str(int((clock.now - 600) * 1000)).encode()
    headers = (("retry-attempt", b"1"), ("retry-first-failure", first), ("retry-not-before", b"0"))
    late = message_record(message_of(A), 99, headers=headers)

    # When it comes round behind B's backlog, A having had every slot a moment ago
    svc.deliver_batch(batch([A] * 40, 200))
    svc.deliver_batch([*batch([B] * 30), late])

    # Then it went back with its attempt count and first failure unchanged
    [back] = [dict(r.headers) for r in svc.publisher.on(TOPIC) if r.key == late.key]
    assert back["retry-attempt"] == b"1"
    assert back["retry-first-failure"] == first


def test_a_batch_within_the_horizon_is_sent_whole():
    provider, clock = Provider(), Clock()
    svc = service(provider, clock)
    svc.deliver_batch(batch([A] * 18 + [B] * 2))
    assert callers_of(provider.sent) == {A: 18, B: 2}
    assert svc.publisher.on(TOPIC) == []


@pytest.mark.parametrize("env", [{"FAIR_SHARE_HORIZON_SECONDS": "0"}, {"SEND_RATE_PER_SECOND": "0"}])
def test_without_a_horizon_or_a_rate_every_record_waits_for_its_slot(env):
    provider, clock = Provider(), Clock()
    svc = service(provider, clock, **env)
    svc.deliver_batch(batch([A] * 45 + [B] * 5))
    assert callers_of(provider.sent) == {A: 45, B: 5}
    assert svc.publisher.on(TOPIC) == []
