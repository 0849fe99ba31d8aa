"""One send: the record's due time, the send's claim, the channel's pacing, the provider call and its quick retries.

:meth:`Sending.send` answers an outcome (``notifications.outcomes``) and raises nothing: the provider's typed errors
become outcomes where the provider is called, and whatever else it raises becomes ``Broken``.

- A deferred record waits for its not-before time inside the invocation when it can, else it is not yet due.
- The send is claimed on the channel's status row before the provider is called (the first of a delivery's two
  writes, ``notifications.status``; the outcome's write is the second): a redelivered record whose channel the
  provider already has is not sent again, and one whose send another attempt holds is in flight. The claim is a
  lease that lapses with this invocation, so a crashed attempt's send is free again for the redelivery.
- Every provider call takes a slot from its partition's rate limiter and is admitted by the channel's circuit
  (``notifications.pacing``). A throttling answer pauses the partition's limiter; any other transient error counts
  towards the circuit. Transient errors are retried a few times inside the invocation, after a short back-off
  (and at least the provider's ``Retry-After`` when that is short), before the send counts as failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.channels.base import ChannelSender
from notifications.contracts.envelopes import ChannelMessage
from notifications.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.outcomes import (
    AlreadySent,
    Broken,
    CircuitOpen,
    Failed,
    InFlight,
    NotYet,
    Rejected,
    SendOutcome,
    Sent,
)
from notifications.pacing import Circuit, RateLimiter
from notifications.settings import SenderSettings
from notifications.status import Claim, SendClaims

_MAX_IN_PROCESS_WAIT = 2.0  # a longer Retry-After defers the record instead of holding the invocation
_RESERVE_SECONDS = 5.0  # left for the provider call, status writes and the batch response

# How long a claimed send blocks a redelivery when the invocation's remaining time is unknown (outside Lambda).
DEFAULT_LEASE_SECONDS = 60.0


@dataclass
class Sending:
    """A channel's sends, with its circuit, a rate limiter per partition and the invocation's remaining time."""

    settings: SenderSettings
    sender: ChannelSender
    status: SendClaims
    circuit: Circuit
    wall_clock: Callable[[], float] = field(default=time.time)
    sleep: Callable[[float], None] = field(default=time.sleep)

    def __post_init__(self) -> None:
        self._limiters: dict[str, RateLimiter] = {}
        self._context: LambdaContext | None = None

    def bind(self, context: LambdaContext | None) -> None:
        """Let claims lapse with the invocation (a crashed send is retried later) and waits end before it does."""
        self._context = context

    def open(self, partitions: Iterable[str]) -> None:
        """Start the partitions' rate limiters for a batch, in one thread, before its lanes ask for slots."""
        for partition in partitions:
            self._limiter(partition)

    def send(self, message: ChannelMessage, partition: str, not_before: float) -> SendOutcome:
        """Send ``message`` of ``partition`` once it is due (``not_before``, epoch seconds); the outcome."""
        wait = not_before - self.wall_clock()
        if wait > 0:
            if wait > self._remaining():
                return NotYet("not due within this invocation", not_before)
            self.sleep(wait)
        lease = self._remaining() + _RESERVE_SECONDS if self._context is not None else DEFAULT_LEASE_SECONDS
        try:
            claim = self.status.claim_send(message.key, message.channel, lease)
        except Exception as exc:
            return Failed(TransientDeliveryError(f"status store unavailable: {type(exc).__name__}"))
        if claim.outcome is Claim.ALREADY_SENT:
            return AlreadySent(claim.provider_message_id)
        if claim.outcome is Claim.IN_FLIGHT:
            return InFlight()
        try:
            return self._paced(message, partition)
        except Exception as exc:  # neither transient nor permanent: the claim is released, the record redelivered
            return Broken(exc)

    def _paced(self, message: ChannelMessage, partition: str) -> SendOutcome:
        """The provider call under the channel's pacing, inside the send's claim."""
        limiter = self._limiter(partition)
        attempt = 1
        while True:
            wait = self.circuit.admit()
            if wait is not None:
                return CircuitOpen(self.wall_clock() + wait)
            if not limiter.acquire(max_wait=self._remaining()):
                return NotYet("no sending slot within this invocation", self.wall_clock() + 1.0, claimed=True)
            try:
                receipt = self.sender.send(message)
            except TransientDeliveryError as exc:
                if exc.throttled:
                    limiter.pause(exc.retry_after or 1.0)
                else:
                    self.circuit.failure()
                delay = self._in_process_delay(attempt, exc)
                if delay is None:
                    return Failed(exc)
                self.sleep(delay)
                attempt += 1
                continue
            except PermanentDeliveryError as exc:
                self.circuit.success()  # the provider answered: it is up
                return Rejected(exc.reason)
            self.circuit.success()
            return Sent(receipt.provider_message_id)

    def _in_process_delay(self, attempt: int, exc: TransientDeliveryError) -> float | None:
        """Seconds to wait before another attempt in this invocation, or None to defer the record."""
        if attempt >= self.settings.provider_attempts or self.circuit.is_open:
            return None
        delay: float = self.settings.provider_backoff_seconds * float(2 ** (attempt - 1))
        if exc.retry_after is not None:
            if exc.retry_after > _MAX_IN_PROCESS_WAIT:
                return None
            delay = max(delay, exc.retry_after)
        if delay > self._remaining():
            return None
        return delay

    def _limiter(self, partition: str) -> RateLimiter:
        limiter = self._limiters.get(partition)
        if limiter is None:
            limiter = self._limiters[partition] = RateLimiter(self.settings.partition_rate, sleep=self.sleep)
        return limiter

    def _remaining(self) -> float:
        """Seconds this invocation may still spend waiting."""
        if self._context is None:
            return float("inf")
        return self._context.get_remaining_time_in_millis() / 1000 - _RESERVE_SECONDS
