"""Two delivery boundaries pinned exactly: how long a provider's ``Retry-After`` holds the partition, and where the
outage budget ends (docs/delivery-pressure.md).

- A throttled send pauses its partition's limiter for the provider's ``Retry-After``: the partition's next send
  waits that long, a send on another partition does not wait, and a next send the invocation cannot wait for is
  deferred untried.
- A record whose transient failures span exactly ``OUTAGE_BUDGET_SECONDS`` is still deferred ("waited out for up
  to" the budget); one millisecond more (the resolution of the ``retry-first-failure`` header) dead-letters it.
"""

from __future__ import annotations

import pytest

from devstack.lambda_context import LocalLambdaContext
from notifications.channels.base import Receipt
from notifications.contracts.envelopes import ChannelMessage
from notifications.contracts.status_view import DeliveryState
from notifications.errors import TransientDeliveryError
from notifications.registry import Channel
from tests.channel_support import channel_message, message_record
from tests.unit.test_delivery_retries import Clock, FailingTimes, deferred, record, service

BUDGET_SECONDS = 3600


class ThrottlesFirstCall:
    """A provider answering its first call with 429 and ``Retry-After: <retry_after>``, every later one with a send."""

    channel = Channel.EMAIL

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        self.sent: list[str] = []
        self.calls = 0

    def send(self, message: ChannelMessage) -> Receipt:
        self.calls += 1
        if self.calls == 1:
            raise TransientDeliveryError("429 Too Many Requests", retry_after=self.retry_after, throttled=True)
        self.sent.append(message.purchase.order_id)
        return Receipt(provider_message_id=f"p-{self.calls}")


def test_a_retry_after_holds_the_partitions_next_send_for_exactly_that_long(moto_aws):
    # Given a provider that throttles the first send with Retry-After: 10 (longer than a wait inside the invocation)
    retry_after = 10.0
    sender = ThrottlesFirstCall(retry_after)
    clock = Clock()
    svc = service(moto_aws, sender, attempts=3, clock=clock)
    throttled, other_partition, next_in_partition = (channel_message(Channel.EMAIL) for _ in range(3))

    # When the throttled record is delivered on partition 0
    svc.deliver(record(throttled, offset=1))

    # Then it is deferred for at least the Retry-After, and nothing waited yet
    [headers] = deferred(svc)
    assert int(headers["retry-not-before"]) / 1000 >= clock.now + retry_after
    assert clock.slept == []

    # When a record of another partition is delivered, it is sent without waiting: the pause is partition 0's
    svc.deliver(message_record(other_partition, 2, partition=1))
    assert sender.sent == [other_partition.purchase.order_id]
    assert clock.slept == []

    # When the next record of partition 0 is delivered
    svc.deliver(record(next_in_partition, offset=3))

    # Then it was sent after one wait of the Retry-After. The limiter measures the pause on the monotonic clock,
    # which the virtual sleeps do not move: only the real time this test took since the throttle comes off it.
    assert sender.sent == [other_partition.purchase.order_id, next_in_partition.purchase.order_id]
    [wait] = clock.slept
    assert retry_after - 1 < wait <= retry_after
    status = svc.status.get(next_in_partition.notification_id)
    assert status is not None and status.channels[0].state == DeliveryState.SENT


def test_a_retry_after_longer_than_the_invocation_has_left_defers_the_partitions_next_record_untried(moto_aws):
    # Given an invocation with 20 s in all (its remaining time is the Lambda context's get_remaining_time_in_millis,
    # https://docs.aws.amazon.com/lambda/latest/dg/python-context.html) and a provider that throttles the first
    # send with Retry-After: 30
    sender = ThrottlesFirstCall(retry_after=30)
    clock = Clock()
    svc = service(moto_aws, sender, attempts=3, clock=clock)
    svc.bind(LocalLambdaContext("sender", timeout_seconds=20))
    throttled, next_in_partition = (channel_message(Channel.EMAIL) for _ in range(2))

    # When the throttled record and then the next record of its partition are delivered
    svc.deliver(record(throttled, offset=1))
    svc.deliver(record(next_in_partition, offset=2))

    # Then the provider was called once: the partition is paused past the invocation's end, so the next record is
    # deferred as it is (no failed attempt counted, no wait), to be sent by a later invocation
    assert sender.calls == 1
    assert sender.sent == []
    assert clock.slept == []
    first, second = deferred(svc)
    assert first["retry-attempt"] == b"1"
    assert second["retry-attempt"] == b"0"
    assert second["retry-reason"] == b"no sending slot within this invocation"
    assert svc.publisher.on("notifications.dlq") == []


@pytest.mark.parametrize(
    ("failing_for_ms", "dead_lettered"),
    [
        pytest.param(BUDGET_SECONDS * 1000 - 1000, False, id="one-second-inside-the-budget"),
        pytest.param(BUDGET_SECONDS * 1000, False, id="exactly-the-budget"),
        pytest.param(BUDGET_SECONDS * 1000 + 1, True, id="one-millisecond-past-the-budget"),
    ],
)
def test_the_outage_budget_is_spent_only_past_its_last_millisecond(moto_aws, failing_for_ms, dead_lettered):
    # Given a record deferred 40 times whose first failure is `failing_for_ms` before now, with a budget of 3600 s
    sender = FailingTimes(failures=1000)
    clock = Clock()
    svc = service(moto_aws, sender, attempts=1, clock=clock, OUTAGE_BUDGET_SECONDS=str(BUDGET_SECONDS))
    message = channel_message(Channel.EMAIL)
    first_failure = str(int(clock.now * 1000) - failing_for_ms).encode()
    old = record(message, headers=[("retry-attempt", b"40"), ("retry-first-failure", first_failure)])

    # When it fails once more
    svc.deliver(old)

    # Then up to the budget it is deferred again, keeping its first failure; past it, it is dead-lettered and failed
    status = svc.status.get(message.notification_id)
    assert status is not None
    if dead_lettered:
        [dead] = svc.publisher.on("notifications.dlq")
        assert f"outage budget {BUDGET_SECONDS} s".encode() in dict(dead.headers)["dlq-reason"]
        assert deferred(svc) == []
        assert status.channels[0].state == DeliveryState.FAILED
    else:
        assert svc.publisher.on("notifications.dlq") == []
        [headers] = deferred(svc)
        assert headers["retry-attempt"] == b"41"
        assert headers["retry-first-failure"] == first_failure
        assert status.channels[0].state != DeliveryState.FAILED
