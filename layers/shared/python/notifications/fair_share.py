"""A caller's fair share of a partition's sending slots, when more is waiting than the partition can send soon.

One channel has one rate (``notifications.pacing``), and the callers' records are interleaved in its partitions.
Without a share, one caller's burst holds every partition for as long as the burst takes to send, and every
other caller's records wait behind it. :class:`FairShare` decides, for the records of one batch of one
partition, which take a sending slot in this invocation and which *yield their turn* (``notifications.lanes``
marks them): the sender publishes those again on the channel's topic (a deferral, ``notifications.outcomes``), so
the invocation ends after the slots it can fill within the horizon and the partition moves on to the records
behind them.

- **Not congested** (the batch fits into the horizon's slots): every record takes a slot. Nothing is deferred.
- **Congested**: the horizon's slots go one at a time to the caller that has had the fewest slots over the
  recent window (per unit of weight), and no caller takes more than its share of the slots, counted over the
  window and this batch together, among the callers *active* in the window (that asked for slots in it),
  whether or not they have records in this batch. A caller under its share may take up to all the slots.
- **Work-conserving**: a caller alone in the window has a share of 1, so it takes every slot; a batch hands out
  slots to whoever has records in it, so the rate is not left unused while records wait.
- **No starvation**: a caller may always take its share of the horizon's slots (at least one when its share
  rounds to less); only a caller that has had more than its share over the window lets the others catch up
  first, at most until its own slots leave the window. A yielded record is due at once when it comes round.

State is per execution environment and partition, like the rate limiter: the event-source mapping reads each
partition sequentially and hands it to one invocation at a time, a batch of at most ``BatchSize`` records
(https://docs.aws.amazon.com/lambda/latest/dg/with-msk-process.html), so the shares hold for the channel without
a shared counter, and a caller's records further down the partition are only reached after the batches before them.
docs/delivery-pressure.md has the figures and the costs.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence

Clock = Callable[[], float]


class FairShare:
    """Which records of a batch take a sending slot of the partition now, by caller.

    ``rate``: the partition's slots per second; ``horizon``: how many seconds of slots an invocation hands out
    (the longest it holds the partition for sends when more is waiting); ``window``: how far back slots taken
    and callers seen count; ``weights``: a caller's weight (1 when absent).
    """

    def __init__(
        self,
        rate: float,
        *,
        horizon: float,
        window: float,
        weights: Mapping[str, float] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        if rate <= 0 or horizon <= 0 or window <= 0:
            raise ValueError("rate, horizon and window must be positive")
        self.capacity = max(1, math.floor(rate * horizon))
        self._window = window
        self._weights = dict(weights or {})
        self._clock = clock
        self._taken: dict[str, deque[tuple[float, int]]] = {}  # caller -> (when, slots) over the window
        self._seen: dict[str, float] = {}  # caller -> when it last asked for slots

    def weight(self, caller: str) -> float:
        return self._weights.get(caller, 1.0)

    def plan(self, callers: Sequence[str]) -> list[bool]:
        """For the records of a batch (their callers, in log order): whether each takes a slot now (True) or
        yields its turn (False). A caller's earlier records take its slots first."""
        now = self._clock()
        self._forget(now)
        demand = Counter(callers)
        for caller in demand:
            self._seen[caller] = now
        # Not congested: every record takes a slot.
        grants = dict(demand) if sum(demand.values()) <= self.capacity else self._share(demand)
        for caller, slots in grants.items():
            if slots:
                self._taken.setdefault(caller, deque()).append((now, slots))
        left = dict(grants)
        answer = []
        for caller in callers:
            answer.append(left[caller] > 0)
            left[caller] -= 1
        return answer

    def _share(self, demand: Counter[str]) -> dict[str, int]:
        active = set(self._seen)  # every caller seen in the window, this batch's included
        total_weight = sum(self.weight(c) for c in active)
        used = {c: sum(slots for _, slots in self._taken.get(c, ())) for c in active}
        pool = self.capacity + sum(used.values())  # the slots of the window and this batch together
        bound = {}
        for caller in demand:
            share = self.weight(caller) / total_weight
            # Its share of everything (catching up when it had less), and at least its share of this batch.
            bound[caller] = math.ceil(max(self.capacity * share, pool * share - used[caller]))
        grants = dict.fromkeys(demand, 0)
        for _ in range(self.capacity):
            eligible = [c for c in demand if grants[c] < min(demand[c], bound[c])]
            if not eligible:
                break
            neediest = min(eligible, key=lambda c: ((used[c] + grants[c]) / self.weight(c), c))
            grants[neediest] += 1
        return grants

    def _forget(self, now: float) -> None:
        since = now - self._window
        for caller in [c for c, seen in self._seen.items() if seen < since]:
            del self._seen[caller]
        for caller, taken in list(self._taken.items()):
            while taken and taken[0][0] < since:
                taken.popleft()
            if not taken:
                del self._taken[caller]
