"""Deferral: a record set aside is published again on its own topic, with ``retry-*`` headers saying when it is due.

The headers travel with the copy and are all a sender knows of a record's past when it comes round:

- ``retry-attempt``: failed attempts so far (a first delivery has none, and a record that only waited or yielded
  its turn keeps its count);
- ``retry-not-before``: when it is due (epoch milliseconds); the sender waits for it inside its invocation;
- ``retry-first-failure``: when its first attempt failed (epoch milliseconds), from which the outage budget
  counts; absent until an attempt fails;
- ``retry-reason``: why it was set aside last.

After a failed attempt the record is due after a back-off that doubles from ``RETRY_BASE_DELAY_SECONDS`` per attempt
up to ``RETRY_MAX_DELAY_SECONDS``, and at least the provider's ``Retry-After`` (capped the same way). Which outcome
defers a record, and when, is decided in ``notifications.outcomes``; docs/delivery-pressure.md explains the choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from notifications.kafka.msk_event import KafkaRecord
from notifications.kafka.producer import OutgoingRecord
from notifications.settings import SenderSettings

RETRY_ATTEMPT = "retry-attempt"
RETRY_NOT_BEFORE = "retry-not-before"  # epoch milliseconds
RETRY_FIRST_FAILURE = "retry-first-failure"  # epoch milliseconds
RETRY_REASON = "retry-reason"
RETRY_HEADERS = frozenset({RETRY_ATTEMPT, RETRY_NOT_BEFORE, RETRY_FIRST_FAILURE, RETRY_REASON})
YIELD_REASON = "over the caller's fair share of the channel's rate"


@dataclass(frozen=True)
class RetryState:
    """Where a deferred record stands, read from its ``retry-*`` headers (a first delivery has none)."""

    attempt: int = 0
    not_before: float = 0.0  # epoch seconds
    first_failure: float | None = None  # epoch seconds

    @classmethod
    def of(cls, record: KafkaRecord) -> RetryState:
        def number(name: str) -> float | None:
            raw = record.header(name)
            try:
                return float(raw) if raw is not None else None
            except ValueError:
                return None

        first = number(RETRY_FIRST_FAILURE)
        return cls(
            attempt=int(number(RETRY_ATTEMPT) or 0),
            not_before=(number(RETRY_NOT_BEFORE) or 0.0) / 1000,
            first_failure=first / 1000 if first is not None else None,
        )

    def after_failure(self, reason: str, not_before: float, now: float) -> Deferral:
        """The next try after a failed attempt: one more attempt counted, the first failure now if none was yet."""
        first_failure = self.first_failure if self.first_failure is not None else now
        return Deferral(reason, not_before, self.attempt + 1, first_failure)

    def untried(self, reason: str, not_before: float) -> Deferral:
        """The next try of a record set aside without an attempt: its attempts and first failure unchanged."""
        return Deferral(reason, not_before, self.attempt, self.first_failure)


@dataclass(frozen=True)
class Deferral:
    """A record's next try: why it was set aside, when it is due (epoch seconds), its attempts and first failure."""

    reason: str
    not_before: float
    attempt: int
    first_failure: float | None

    def undelivered_for(self, now: float) -> float:
        """Seconds since the record's first failed attempt (0 when none failed): what the outage budget counts."""
        return now - self.first_failure if self.first_failure is not None else 0.0

    def copy_of(self, record: KafkaRecord) -> OutgoingRecord:
        """The record again, for its own topic, with this deferral's headers in place of its old ``retry-*`` ones."""
        kept = tuple((k, v) for k, v in record.headers if k not in RETRY_HEADERS)
        first_failure = self.first_failure
        return OutgoingRecord(
            topic=record.topic,
            key=record.key,
            value=record.value or b"",
            headers=(
                *kept,
                (RETRY_ATTEMPT, str(self.attempt).encode()),
                (RETRY_NOT_BEFORE, str(int(self.not_before * 1000)).encode()),
                *(
                    ((RETRY_FIRST_FAILURE, str(int(first_failure * 1000)).encode()),)
                    if first_failure is not None
                    else ()
                ),
                (RETRY_REASON, self.reason.encode()[:500]),
            ),
        )


def backoff(settings: SenderSettings, attempt: int, retry_after: float | None, now: float) -> float:
    """When a record that failed transiently is due again (epoch seconds), after ``attempt`` earlier failed attempts."""
    delay = min(settings.retry_max_delay_seconds, settings.retry_base_delay_seconds * 2.0**attempt)
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.retry_max_delay_seconds))
    return now + delay
