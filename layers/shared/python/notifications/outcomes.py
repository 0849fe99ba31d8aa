"""What becomes of a record the sender handled: its outcome as a value, and the one place that maps it to effects.

``notifications.sending`` answers a send's outcome (sent, already sent, in flight, rejected, failed, the circuit
open, not yet, broken) and ``notifications.delivery`` those it decides before any send (an unreadable record, a
record that yields its turn). :meth:`Outcomes.apply` turns each into its effects: the write to the channel's status
row, a deferral (``notifications.deferral``), a dead letter, the log line and metric, and whether the record is to
be reported failed in the batch response (the event-source mapping then redelivers it and the rest of its
partition). The status table is a view: a failed status write is logged and never turns a finished record into a
retry. A Kafka write that is not acknowledged (a deferral or a dead letter) raises ``BrokerUnavailableError``: the
record is then reported failed too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from notifications.contracts.envelopes import ChannelMessage
from notifications.deferral import YIELD_REASON, Deferral, RetryState, backoff
from notifications.errors import TransientDeliveryError
from notifications.kafka.msk_event import KafkaRecord
from notifications.kafka.producer import Publisher, publish_one
from notifications.observability import logger, metrics
from notifications.records import dead_letter
from notifications.settings import SenderSettings
from notifications.status import SendClaims

CIRCUIT_OPEN_REASON = "provider unavailable (circuit open)"


@dataclass(frozen=True)
class Sent:
    """The provider took the message."""

    provider_message_id: str | None


@dataclass(frozen=True)
class AlreadySent:
    """The provider has this channel's message already (a redelivery); nothing was sent."""

    provider_message_id: str | None


@dataclass(frozen=True)
class InFlight:
    """Another attempt holds the send's claim: the record is reported failed, to be retried after it."""


@dataclass(frozen=True)
class Broken:
    """The provider call raised neither a transient nor a permanent error (a bug): the claim is released and the
    record reported failed, so its redelivery finds the send free."""

    error: Exception


@dataclass(frozen=True)
class Rejected:
    """The provider refused the message for good: dead letter, status failed."""

    reason: str


@dataclass(frozen=True)
class Failed:
    """The provider failed transiently, after the quick retries: deferred for the back-off (a failed attempt)."""

    error: TransientDeliveryError


@dataclass(frozen=True)
class CircuitOpen:
    """The provider is down (the channel's circuit is open): deferred until it may be tried (a failed attempt)."""

    not_before: float  # epoch seconds


@dataclass(frozen=True)
class NotYet:
    """The provider was not called: the record's time or a sending slot does not come within this invocation.
    Deferred as it is; ``claimed``: the send's claim was taken and is released."""

    reason: str
    not_before: float  # epoch seconds
    claimed: bool = False


@dataclass(frozen=True)
class YieldTurn:
    """Over its caller's fair share of the partition's slots (``notifications.fair_share``): deferred as it is, due
    at once (or when it was due), no claim taken and no status written."""


@dataclass(frozen=True)
class Unreadable:
    """A poison record (undecodable, invalid, or for another channel): dead letter, nothing else."""

    reason: str


SendOutcome = Sent | AlreadySent | InFlight | Broken | Rejected | Failed | CircuitOpen | NotYet
Outcome = SendOutcome | YieldTurn | Unreadable


@dataclass
class Outcomes:
    """The effects of a sender's outcomes, on the channel's status rows, its topic and the DLQ."""

    settings: SenderSettings
    status: SendClaims
    publisher: Publisher
    wall_clock: Callable[[], float] = field(default=time.time)

    def apply(
        self, record: KafkaRecord, outcome: Outcome, message: ChannelMessage | None, retry: RetryState
    ) -> str | None:
        """The outcome's effects; None when the record is done, else why it is to be reported failed.

        ``message``: the record's message (None when it has none); ``retry``: its ``retry-*`` headers."""
        log = _log_fields(message)
        match outcome:
            case Sent(provider_message_id):
                self._write(self.status.record_sent, message, provider_message_id)
                logger.info("delivered", provider_message_id=provider_message_id, attempt=retry.attempt + 1, extra=log)
                metrics.add_metric(name="Delivered", unit="Count", value=1)
            case AlreadySent(provider_message_id):
                logger.info("already delivered, not sent again", provider_message_id=provider_message_id, extra=log)
                metrics.add_metric(name="RedeliveriesSkipped", unit="Count", value=1)
            case InFlight():
                return "the send is in flight in another attempt"
            case Broken(error):
                self._write(self.status.release, message)
                return f"{type(error).__name__}: {error}"
            case Rejected(reason):
                logger.warning("permanent delivery failure, to DLQ", reason=reason, extra=log)
                metrics.add_metric(name="DeliveryPermanentFailures", unit="Count", value=1)
                self._dead_letter(record, reason)
                self._write(self.status.record_failure, message, reason, final=True)
            case Failed(error):
                logger.warning(
                    "transient delivery failure, deferred",
                    reason=error.reason,
                    throttled=error.throttled,
                    ambiguous=error.ambiguous,
                    extra=log,
                )
                metrics.add_metric(name="DeliveryTransientFailures", unit="Count", value=1)
                if error.ambiguous:
                    metrics.add_metric(name="AmbiguousSends", unit="Count", value=1)
                due = backoff(self.settings, retry.attempt, error.retry_after, self.wall_clock())
                self._failed_attempt(record, message, retry, error.reason, due)
            case CircuitOpen(not_before):
                self._failed_attempt(record, message, retry, CIRCUIT_OPEN_REASON, not_before)
            case NotYet(reason, not_before, claimed):
                if claimed:
                    self._write(self.status.release, message)
                self._defer(record, retry.untried(reason, not_before))
            case YieldTurn():
                self._defer(record, retry.untried(YIELD_REASON, max(retry.not_before, self.wall_clock())))
            case Unreadable(reason):
                logger.warning("poison record to DLQ", source=record.partition_id, offset=record.offset, reason=reason)
                metrics.add_metric(name="SenderPoisonRecords", unit="Count", value=1)
                self._dead_letter(record, reason)
        return None

    def _failed_attempt(
        self, record: KafkaRecord, message: ChannelMessage | None, retry: RetryState, reason: str, not_before: float
    ) -> None:
        """Defer a record whose attempt failed, its failure written; past the outage budget, dead-letter it."""
        log, now = _log_fields(message), self.wall_clock()
        deferral = retry.after_failure(reason, not_before, now)
        budget = self.settings.outage_budget_seconds
        if deferral.undelivered_for(now) > budget:
            final = f"undelivered for {deferral.undelivered_for(now):.0f} s (outage budget {budget} s): {reason}"
            logger.warning("outage budget exhausted, to DLQ", reason=final, extra=log)
            metrics.add_metric(name="DeliveryBudgetExhausted", unit="Count", value=1)
            self._dead_letter(record, final)
            self._write(self.status.record_failure, message, final, final=True)
            return
        self._write(self.status.record_failure, message, reason, final=False)
        self._defer(record, deferral)
        wait = round(not_before - now, 3)
        logger.info("deferred", reason=reason, attempt=deferral.attempt, wait_seconds=wait, extra=log)

    def _defer(self, record: KafkaRecord, deferral: Deferral) -> None:
        publish_one(self.publisher, deferral.copy_of(record))
        metrics.add_metric(name="DeliveriesDeferred", unit="Count", value=1)

    def _dead_letter(self, record: KafkaRecord, reason: str) -> None:
        stage = f"sender-{self.settings.channel.value}"
        publish_one(self.publisher, dead_letter(record, reason, topic=self.settings.topic_dlq, stage=stage))

    @staticmethod
    def _write(write: Callable[..., None], message: ChannelMessage | None, *args: Any, **kwargs: Any) -> None:
        """A write to the message's status row (an unreadable record has none); a failed write is only logged."""
        if message is None:
            return
        try:
            write(message.key, message.channel, *args, **kwargs)
        except Exception:
            logger.exception("status write failed")


def _log_fields(message: ChannelMessage | None) -> dict[str, str]:
    if message is None:
        return {}
    return {
        "caller": message.caller or "-",
        "notification_id": str(message.notification_id),
        "channel": message.channel.value,
        "order_id": message.purchase.order_id,
    }
