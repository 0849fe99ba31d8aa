"""Transient failures: a few quick retries inside the invocation, then the record is deferred on its own topic
(``retry-*`` headers) instead of failing the batch; throttling pauses the channel; an outage opens its circuit;
only an outage longer than the budget dead-letters."""

from __future__ import annotations

import pytest

from devstack.lambda_context import LocalLambdaContext
from notifications.channels.base import Receipt
from notifications.contracts.envelopes import ChannelMessage
from notifications.delivery import DeliveryService
from notifications.errors import TransientDeliveryError
from notifications.kafka.msk_event import KafkaRecord
from notifications.registry import Channel
from notifications.settings import SenderSettings
from tests.channel_support import channel_message, message_record
from tests.support import InMemoryStatusStore, MemoryPublisher


class FailingTimes:
    channel = Channel.EMAIL

    def __init__(self, failures: int, retry_after: float | None = None) -> None:
        self.failures = failures
        self.retry_after = retry_after
        self.calls = 0

    def send(self, message: ChannelMessage) -> Receipt:
        self.calls += 1
        if self.calls <= self.failures:
            raise TransientDeliveryError("busy", retry_after=self.retry_after)
        return Receipt(provider_message_id="ok")


class Clock:
    """Wall clock and sleep of the service, virtual: sleeping moves time on at once."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def service(moto_aws, sender, attempts: int = 3, clock: Clock | None = None, **env: str) -> DeliveryService:
    settings = SenderSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "CHANNEL": "email",
            "EMAIL_FROM_ADDRESS": "o@shop.example",
            "STATUS_TABLE_NAME": "s",
            "IDEMPOTENCY_TABLE_NAME": "notifications-idempotency",
            "PROVIDER_ATTEMPTS": str(attempts),
            "PROVIDER_BACKOFF_SECONDS": "0",
            **env,
        }
    )
    clock = clock or Clock()
    return DeliveryService(
        settings=settings,
        sender=sender,
        status=InMemoryStatusStore(),
        publisher=MemoryPublisher(),
        wall_clock=clock.time,
        sleep=clock.sleep,
    )


def record(message: ChannelMessage, offset: int = 1, headers=()) -> KafkaRecord:
    return message_record(message, offset, headers=tuple(headers))


def deferred(svc: DeliveryService) -> list[dict[str, bytes]]:
    """Headers of every record the service published back onto the email topic."""
    return [dict(r.headers) for r in svc.publisher.on("notifications.email")]


def come_round(svc: DeliveryService, offset: int) -> KafkaRecord:
    """The last deferred record as the event-source mapping delivers it when its turn comes."""
    out = svc.publisher.on("notifications.email")[-1]
    return KafkaRecord(
        topic=out.topic, partition=0, offset=offset, timestamp=0, key=out.key, value=out.value, headers=out.headers
    )


def test_two_transient_failures_then_success_is_one_delivery(moto_aws):
    sender = FailingTimes(failures=2)
    svc = service(moto_aws, sender, attempts=3)
    svc.bind(LocalLambdaContext("sender"))
    svc.deliver(record(channel_message(Channel.EMAIL)))
    assert sender.calls == 3


def test_persistent_transient_failure_defers_the_record_after_the_attempts(moto_aws):
    # Given a provider failing every call
    sender = FailingTimes(failures=10)
    clock = Clock()
    svc = service(moto_aws, sender, attempts=3, clock=clock)
    message = channel_message(Channel.EMAIL)

    # When a record is delivered
    svc.deliver(record(message))

    # Then it was tried three times, then published again on its topic to be tried later, and nothing raised
    assert sender.calls == 3
    [headers] = deferred(svc)
    assert headers["retry-attempt"] == b"1" and headers["retry-reason"] == b"busy"
    assert int(headers["retry-not-before"]) / 1000 == pytest.approx(clock.now + 2.0)  # base 1 s * 2^1
    assert int(headers["retry-first-failure"]) / 1000 == pytest.approx(clock.now)
    status = svc.status.get(message.notification_id)
    assert status is not None and status.channels[0].last_error == "busy"
    assert svc.publisher.on("notifications.dlq") == []


def test_a_deferred_record_waits_for_its_time_and_is_delivered_once(moto_aws):
    # Given a record deferred once, and the provider recovered
    sender = FailingTimes(failures=3)
    clock = Clock()
    svc = service(moto_aws, sender, attempts=3, clock=clock)
    message = channel_message(Channel.EMAIL)
    svc.deliver(record(message))
    not_before = int(deferred(svc)[0]["retry-not-before"]) / 1000

    # When the deferred copy comes round (and the original is redelivered too, as after a crash)
    svc.deliver(come_round(svc, offset=2))
    svc.deliver(record(message))

    # Then the sender waited for the not-before time, sent once, and the redelivered original was not sent again
    assert clock.now >= not_before
    assert sender.calls == 4
    assert len(deferred(svc)) == 1


def test_a_long_retry_after_defers_at_once_for_at_least_that_long(moto_aws):
    sender = FailingTimes(failures=1, retry_after=30)
    clock = Clock()
    svc = service(moto_aws, sender, attempts=3, clock=clock)
    svc.deliver(record(channel_message(Channel.EMAIL)))
    assert sender.calls == 1
    assert int(deferred(svc)[0]["retry-not-before"]) / 1000 >= clock.now + 30


def test_an_invocation_almost_out_of_time_starts_no_send_and_defers(moto_aws):
    # Given an invocation with less time left than a send needs
    sender = FailingTimes(failures=0)
    svc = service(moto_aws, sender, attempts=3)
    svc.bind(LocalLambdaContext("sender", timeout_seconds=1))

    # When a record is delivered, the provider is not called and the record waits for the next invocation
    svc.deliver(record(channel_message(Channel.EMAIL)))
    assert sender.calls == 0
    [headers] = deferred(svc)
    assert headers["retry-attempt"] == b"0"


def test_throttling_pauses_the_channel_and_does_not_open_the_circuit(moto_aws):
    # Given a provider that throttles the first two calls (HTTP 429 with Retry-After: 1)
    class Throttling(FailingTimes):
        def send(self, message: ChannelMessage) -> Receipt:
            self.calls += 1
            if self.calls <= self.failures:
                raise TransientDeliveryError("slow down", retry_after=1, throttled=True)
            return Receipt(provider_message_id="ok")

    sender = Throttling(failures=2)
    clock = Clock()
    svc = service(moto_aws, sender, attempts=3, clock=clock, CIRCUIT_FAILURE_THRESHOLD="1")

    # When a record is delivered
    svc.deliver(record(channel_message(Channel.EMAIL)))

    # Then it was sent on the third call, after waiting out each Retry-After, and nothing was deferred
    assert sender.calls == 3
    assert sum(clock.slept) >= 2
    assert deferred(svc) == []
    assert not svc._circuit.is_open


def test_an_outage_opens_the_circuit_and_later_records_do_not_call_the_provider(moto_aws):
    # Given a provider that is down, and a circuit that opens after 3 failures in a row
    sender = FailingTimes(failures=1000)
    clock = Clock()
    svc = service(moto_aws, sender, attempts=3, clock=clock, CIRCUIT_FAILURE_THRESHOLD="3")

    # When five records are delivered
    messages = [channel_message(Channel.EMAIL) for _ in range(5)]
    for offset, message in enumerate(messages):
        svc.deliver(record(message, offset=offset))

    # Then the provider was called three times only, and every record is deferred, none dead-lettered
    assert sender.calls == 3
    assert len(deferred(svc)) == 5
    assert svc.publisher.on("notifications.dlq") == []
    assert [h["retry-reason"] for h in deferred(svc)[1:]] == [b"provider unavailable (circuit open)"] * 4


def test_past_the_outage_budget_a_failing_record_is_dead_lettered(moto_aws):
    # Given a record that first failed longer ago than the outage budget
    sender = FailingTimes(failures=1000)
    clock = Clock()
    svc = service(moto_aws, sender, attempts=1, clock=clock, OUTAGE_BUDGET_SECONDS="3600")
    message = channel_message(Channel.EMAIL)
    first = str(int((clock.now - 3601) * 1000)).encode()
    old = record(message, headers=[("retry-attempt", b"40"), ("retry-first-failure", first)])

    # When it fails once more
    svc.deliver(old)

    # Then it is in the DLQ with a reason naming the budget, and its status is failed
    [dead] = svc.publisher.on("notifications.dlq")
    assert b"outage budget 3600 s" in dict(dead.headers)["dlq-reason"]
    status = svc.status.get(message.notification_id)
    assert status is not None and status.channels[0].state == "failed"
