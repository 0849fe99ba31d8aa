"""A caller's fair share of a partition's slots (``notifications.fair_share``), on a virtual clock.

Most tests drive a partition log as the event-source mapping and the sender do: an invocation takes a batch from
the head of the log (after the batching window when less than a batch waits), sends the records that take a slot
(one slot interval each, the callers taking turns) and puts the ones that yield their turn back at the tail, as
the sender's deferral does.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence

import pytest

from notifications.errors import ConfigurationError
from notifications.fair_share import FairShare
from notifications.settings import SenderSettings

RATE = 10.0  # slots per second of the partition
BATCH = 100  # records per invocation (the template's BatchSize)
POLL = 0.05  # seconds between two invocations
WINDOW = 1.0  # the batching window (MaximumBatchingWindowInSeconds), waited when less than a batch is there


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def share(clock: Clock, **weights: float) -> FairShare:
    return FairShare(RATE, horizon=2.0, window=30.0, weights=weights, clock=clock)


class Partition:
    """A partition log drained by one sender: what each caller got sent and when, and the writes it cost."""

    def __init__(self, fair: FairShare, clock: Clock) -> None:
        self.fair = fair
        self.clock = clock
        self.log: deque[str] = deque()
        self.sent: dict[str, list[float]] = defaultdict(list)
        self.rewrites = 0
        self.batches: list[dict[str, int]] = []  # slots per caller in each invocation

    def append(self, callers: Sequence[str]) -> None:
        self.log.extend(callers)

    def invoke(self) -> None:
        if len(self.log) < BATCH:
            self.clock.now += WINDOW
        batch = [self.log.popleft() for _ in range(min(BATCH, len(self.log)))]
        slots: dict[str, int] = defaultdict(int)
        for caller, take in zip(batch, self.fair.plan(batch), strict=True):
            if take:
                slots[caller] += 1
            else:
                self.log.append(caller)
                self.rewrites += 1
        turns = [caller for i in range(max(slots.values(), default=0)) for caller in slots if i < slots[caller]]
        for caller in turns:
            self.clock.now += 1 / RATE
            self.sent[caller].append(self.clock.now)
        self.batches.append(dict(slots))
        self.clock.now += POLL

    def drain(self, limit: int = 10_000) -> float:
        start = self.clock.now
        for _ in range(limit):
            if not self.log:
                return self.clock.now - start
            self.invoke()
        raise AssertionError("the log was not drained")


def interleaved(a: int, b: int) -> list[str]:
    """A's and B's records as they arrive when both post at once: one of B's after every a/b of A's."""
    every = a // b
    out: list[str] = []
    for _ in range(b):
        out += ["A"] * every + ["B"]
    return out + ["A"] * (a - every * b)


def b_done(partition: Partition, start: float) -> float:
    return max(partition.sent["B"]) - start


def b_alone(count: int) -> float:
    """How long B's ``count`` records take on an idle partition."""
    clock = Clock()
    alone = Partition(share(clock), clock)
    alone.append(["B"] * count)
    start = clock.now
    alone.drain()
    assert alone.rewrites == 0
    return b_done(alone, start)


def test_b_alone_is_sent_at_the_full_rate_in_one_invocation():
    assert b_alone(20) == pytest.approx(WINDOW + 20 / RATE)


def test_b_next_to_ten_times_its_volume_of_a_interleaved_takes_at_most_twice_as_long_as_alone():
    # Given A and B posting at once, A ten times B's volume: their records interleaved in the partition
    clock = Clock()
    both = Partition(share(clock), clock)
    both.append(interleaved(200, 20))

    # When the partition is drained
    start = clock.now
    both.drain()

    # Then B is done within twice its time alone, and every record of A was sent, each once
    assert b_done(both, start) <= 2 * b_alone(20)
    assert len(both.sent["A"]) == 200 and len(both.sent["B"]) == 20
    # And B had its half of the slots in each invocation where it had records
    assert [batch["B"] for batch in both.batches[:2]] == [9, 9]
    assert [batch["A"] for batch in both.batches[:2]] == [10, 10]


def test_b_behind_a_burst_waits_only_for_the_invocations_that_reach_it_then_catches_up():
    # Given A's burst of 200 and B's 20 right behind it in the partition
    clock = Clock()
    both = Partition(share(clock), clock)
    both.append(["A"] * 200 + ["B"] * 20)

    # When the partition is drained
    start = clock.now
    both.drain()

    # Then reaching B cost one horizon per batch of A ahead of it (the rest of A's burst went back on the log),
    # and then B, under its share of the window, took every slot it needed at once
    ahead = 200 // BATCH
    assert b_done(both, start) <= ahead * (2.0 + POLL) + 20 / RATE + 0.01
    assert both.batches[ahead] == {"B": 20}
    assert len(both.sent["A"]) == 200


def test_a_caller_alone_gets_every_slot_of_every_invocation():
    # Given one caller with a backlog of ten batches
    clock = Clock()
    partition = Partition(share(clock), clock)
    partition.append(["A"] * 1000)

    # When the partition is drained
    took = partition.drain()

    # Then each invocation filled the horizon's 20 slots: the rate was used in full (work-conserving), but for
    # the batching window of the last few invocations, which had less than a batch
    assert all(batch == {"A": 20} for batch in partition.batches)
    windows = sum(1 for n in range(1000, 0, -20) if n < BATCH)
    assert took == pytest.approx(1000 / RATE + len(partition.batches) * POLL + windows * WINDOW)
    # And the price: the records over the horizon went back on the log, up to 80 per invocation
    assert partition.rewrites == sum(min(BATCH, n) - 20 for n in range(1000, 0, -20))


def test_a_batch_that_fits_the_horizon_is_sent_whole_whoever_had_more():
    # Given A has taken a lot of slots recently and B is active
    clock = Clock()
    fair = share(clock)
    fair.plan(["A"] * 80 + ["B"] * 5)

    # When the next batch holds fewer records than the horizon's slots
    takes = fair.plan(["A"] * 15 + ["B"])

    # Then every one takes a slot (nothing is congested)
    assert all(takes)


def test_in_a_congested_batch_a_caller_under_its_share_takes_what_it_has_and_the_other_its_share():
    clock = Clock()
    fair = share(clock)
    takes = fair.plan(["A"] * 45 + ["B"] * 5)
    assert takes.count(True) == 15
    assert all(takes[45:])  # B's five
    assert takes[:10] == [True] * 10 and not any(takes[10:45])  # A's first ten, in log order


def test_an_active_caller_without_records_in_the_batch_keeps_its_share_reserved():
    # Given B was active a moment ago
    clock = Clock()
    fair = share(clock)
    fair.plan(["A"] * 30 + ["B"] * 5)
    clock.now += 2

    # When a batch has only A's records: A takes its half of the horizon, not B's
    assert fair.plan(["A"] * 100).count(True) == 10

    # And once B has been quiet for the window, A has every slot again
    clock.now += 31
    assert fair.plan(["A"] * 100).count(True) == 20


@pytest.mark.parametrize(("weight", "expected"), [(1.0, 0.5), (3.0, 0.75)])
def test_weights_split_the_slots_of_two_backlogged_callers(weight, expected):
    # Given A with a weight, B without, both with long backlogs interleaved
    clock = Clock()
    partition = Partition(share(clock, A=weight), clock)
    partition.append(["A", "B"] * 1000)

    # When the partition sends for a minute
    while clock.now < 1060:
        partition.invoke()

    # Then A had its weighted share of the slots
    a, b = len(partition.sent["A"]), len(partition.sent["B"])
    assert a / (a + b) == pytest.approx(expected, abs=0.03)


def test_a_caller_far_over_its_share_waits_at_most_the_window_and_is_never_starved():
    # Given A has had every slot for 20 s, then B arrives with a long backlog
    clock = Clock()
    partition = Partition(share(clock), clock)
    partition.append(["A"] * 500)
    for _ in range(10):
        partition.invoke()
    partition.append(["B"] * 1000)
    arrived = clock.now

    # When both are drained
    partition.drain()

    # Then B caught up first, but A never waited longer than the share's window between two sends
    a_sends = [t for t in partition.sent["A"] if t > arrived]
    gaps = [b - a for a, b in zip([arrived, *a_sends], a_sends, strict=False)]
    assert max(gaps) <= 30.0
    assert len(partition.sent["A"]) == 500 and len(partition.sent["B"]) == 1000


def test_a_slow_channel_still_hands_out_one_slot_per_invocation_in_turns():
    # Given one slot per six seconds (Slack's 1/s over six partitions): the horizon holds less than one slot
    clock = Clock()
    fair = FairShare(1 / 6, horizon=2.0, window=30.0, clock=clock)
    assert fair.capacity == 1

    # When both callers wait, invocation after invocation
    got = []
    for _ in range(6):
        takes = fair.plan(["A", "A", "B", "B"])
        got.append("AABB"[takes.index(True)])
        clock.now += 6

    # Then the slot goes to each in turn
    assert got == ["A", "B", "A", "B", "A", "B"]


def test_caller_weights_are_read_from_json_and_checked():
    base = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "CHANNEL": "slack", "STATUS_TABLE_NAME": "s"}
    caller = "c-" + "a" * 26
    settings = SenderSettings.from_env({**base, "CALLER_WEIGHTS": f'{{"{caller}": 2.5}}'})
    assert settings.caller_weights == {caller: 2.5}
    assert SenderSettings.from_env(base).caller_weights == {}
    for bad in [f'{{"{caller}": 0}}', '{"not-a-caller": 1}', "shop=2"]:
        with pytest.raises(ConfigurationError):
            SenderSettings.from_env({**base, "CALLER_WEIGHTS": bad})
