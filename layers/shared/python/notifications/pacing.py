"""Pacing a channel's provider calls: a sending rate, a pause when the provider throttles, a circuit for outages.

All three live in the sender's execution environment, for the channel it sends on (docs/delivery-pressure.md
explains the choice). The rate is the channel's configured rate divided by the topic's partition count: the
event-source mapping hands each partition to one invocation at a time, so the partitions together never send
faster than the channel's rate, without a shared counter (and its round trip) per send.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]
Sleep = Callable[[float], None]


# Slots are spaced for 95 % of the rate: a call that starts late (thread scheduling) must not land in the same
# second as the next on-time one and push the provider's count over the rate.
HEADROOM = 0.95


class RateLimiter:
    """At most ``rate`` acquisitions per second, evenly spaced (no burst), and none while paused.

    ``rate`` None means unlimited (pauses still apply). A fresh limiter starts with no credit, so an environment
    that takes a partition over from another one cannot add a burst on top of the other's last sends.
    """

    def __init__(self, rate: float | None, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive or None")
        self._interval = 0.0 if rate is None else 1.0 / (rate * HEADROOM)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = clock() + self._interval
        self._paused_until = 0.0

    def acquire(self, *, max_wait: float | None = None) -> bool:
        """Wait for the next slot; False (and no slot taken) if that would mean waiting longer than ``max_wait``."""
        with self._lock:
            now = self._clock()
            slot = max(self._next, self._paused_until, now)
            if max_wait is not None and slot - now > max_wait:
                return False
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)
        return True

    def pause(self, seconds: float) -> None:
        """The provider throttled us: no slot is handed out for ``seconds``."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


class Circuit:
    """Per-channel outage detector: after ``threshold`` transient failures in a row it opens, and calls wait.

    While open, ``admit()`` says how long to wait before trying; when the open time is over, one caller is
    admitted as the probe and the others keep waiting for its outcome. The open time doubles with every failed
    probe up to ``max_open`` seconds; a success closes the circuit at once. Throttling is not an outage (the rate
    limiter handles it) and is not counted here.
    """

    def __init__(self, threshold: int, open_seconds: float, max_open: float, *, clock: Clock = time.monotonic) -> None:
        self._threshold = threshold
        self._base = open_seconds
        self._max = max_open
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._open_for = 0.0
        self._until = 0.0
        self._probing = False

    def admit(self) -> float | None:
        """None when a call may go ahead now; else the seconds to wait before asking again."""
        with self._lock:
            if not self._open_for:
                return None
            now = self._clock()
            if now < self._until:
                return self._until - now
            if self._probing:
                return min(1.0, self._base)
            self._probing = True
            return None

    @property
    def is_open(self) -> bool:
        with self._lock:
            return bool(self._open_for)

    def success(self) -> None:
        with self._lock:
            self._failures, self._open_for, self._until, self._probing = 0, 0.0, 0.0, False

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._probing = False
            if self._failures < self._threshold:
                return
            self._open_for = min(self._max, self._open_for * 2 if self._open_for else self._base)
            self._until = self._clock() + self._open_for
