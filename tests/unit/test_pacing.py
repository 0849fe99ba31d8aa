"""The channel's pacing: evenly spaced slots at the rate, pauses on throttling, a circuit that opens on outages."""

from __future__ import annotations

import itertools

import pytest

from notifications.pacing import HEADROOM, Circuit, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_slots_are_evenly_spaced_at_the_rate_with_no_initial_burst():
    # Given a limiter of 10 per second on a virtual clock
    clock = Clock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)

    # When 21 slots are taken one after the other
    times = []
    for _ in range(21):
        limiter.acquire()
        times.append(clock.now)

    # Then the first waits one interval (a fresh environment has no credit) and no second ever holds more than 10
    interval = 1 / (10 * HEADROOM)
    assert times[0] == pytest.approx(100 + interval)
    assert all(b - a == pytest.approx(interval) for a, b in itertools.pairwise(times))
    assert max(sum(1 for t in times if start <= t < start + 1) for start in times) <= 10


def test_idle_time_does_not_accumulate_into_a_burst():
    clock = Clock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    clock.now += 60  # a minute without sends
    first = clock.now
    limiter.acquire()
    limiter.acquire()
    assert clock.now - first == pytest.approx(1 / (10 * HEADROOM))


def test_a_pause_holds_every_slot_until_it_is_over():
    clock = Clock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    limiter.pause(3)
    limiter.acquire()
    assert clock.now == pytest.approx(103)


def test_a_slot_further_away_than_max_wait_is_refused_and_not_taken():
    clock = Clock()
    limiter = RateLimiter(1, clock=clock, sleep=clock.sleep)
    assert limiter.acquire(max_wait=0.1) is False
    assert clock.now == 100
    assert limiter.acquire(max_wait=2) is True


def test_the_circuit_opens_after_the_threshold_and_admits_one_probe_at_a_time():
    # Given a circuit opening after 3 failures, for 2 s at first, at most 5 s
    clock = Clock()
    circuit = Circuit(3, 2.0, 5.0, clock=clock)
    for _ in range(2):
        circuit.failure()
    assert circuit.admit() is None

    # When the third failure in a row comes, calls must wait 2 s
    circuit.failure()
    assert circuit.admit() == pytest.approx(2.0)

    # When that time is over, one probe is admitted and the others wait for its outcome
    clock.now += 2
    assert circuit.admit() is None
    assert circuit.admit() is not None

    # When the probe fails the open time doubles (capped), and a later successful probe closes the circuit
    circuit.failure()
    assert circuit.admit() == pytest.approx(4.0)
    clock.now += 4
    assert circuit.admit() is None
    circuit.failure()
    assert circuit.admit() == pytest.approx(5.0)
    clock.now += 5
    assert circuit.admit() is None
    circuit.success()
    assert circuit.admit() is None and not circuit.is_open
