"""Sender domain: deliver a batch of channel messages effectively once, at the channel's pace, never losing one.

For each record, ``DeliveryService`` runs these steps in order, each in its own module, and no step calls back
into one before it:

1. the batch (here): every record decoded once, then planned in lanes (``notifications.lanes``): one per Kafka
   key, run concurrently, the callers taking turns, and the records over their caller's fair share of the
   partition's slots marked to yield their turn;
2. the record (here): its ``retry-*`` headers read once as a value (``RetryState``), and its outcome decided
   without a send when it is unreadable (poison: undecodable, invalid, or for another channel) or yields its turn;
3. the send (``notifications.sending``): wait until the record is due, claim the send on its channel's status
   row, take a slot of the channel's pace, call the provider and retry quick transient failures; its outcome;
4. the outcome's effects, all in one place (``notifications.outcomes``): the status write, a deferral (published
   again on its own topic with ``retry-*`` headers and a due time, ``notifications.deferral``), a dead letter,
   or the record reported failed.

Transient failures that persist, a provider that throttles or is down (its circuit is open) and records that
yield their turn are deferred, so an outage is waited out without using up the event-source mapping's retries,
for up to the outage budget; only then is the record dead-lettered. Permanent errors and unreadable records go to
the DLQ (the record is then done). A record is reported failed (and the event-source mapping redelivers it) only
when its send is in flight in another attempt, when the provider call broke unexpectedly, or when Kafka does not
acknowledge its deferral or dead letter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.channels.base import ChannelSender, PreparesBatches
from notifications.contracts.envelopes import CHANNEL_SCHEMAS, ChannelMessage
from notifications.deferral import RetryState
from notifications.errors import PoisonRecordError
from notifications.kafka.msk_event import KafkaRecord
from notifications.kafka.producer import Publisher
from notifications.lanes import Decoded, Lane, Lanes
from notifications.observability import correlation_id_from_headers, logger
from notifications.outcomes import Outcome, Outcomes, Unreadable, YieldTurn
from notifications.pacing import Circuit
from notifications.records import decode_envelope
from notifications.sending import Sending
from notifications.settings import SenderSettings
from notifications.status import SendClaims


@dataclass
class DeliveryService:
    settings: SenderSettings
    sender: ChannelSender
    status: SendClaims
    publisher: Publisher
    wall_clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        settings = self.settings
        self._circuit = Circuit(
            settings.circuit_failure_threshold, settings.circuit_open_seconds, settings.circuit_max_open_seconds
        )
        self._lanes = Lanes(settings)
        self._sending = Sending(settings, self.sender, self.status, self._circuit, self.wall_clock, self.sleep)
        self._outcomes = Outcomes(settings, self.status, self.publisher, self.wall_clock)
        self._pool = ThreadPoolExecutor(max_workers=settings.send_concurrency, thread_name_prefix="send")

    def bind(self, context: LambdaContext | None) -> None:
        """Let claims lapse with the invocation (a crashed send is retried later) and waits end before it does."""
        self._sending.bind(context)

    def deliver_batch(self, records: Sequence[KafkaRecord]) -> list[KafkaRecord]:
        """Deliver a batch; answer the records to report as failed, in partition and offset order."""
        lanes = self._lanes.plan([(record, _decode(record)) for record in records])
        self._sending.open({record.partition_id for record in records})
        prepare = self.sender.prepare if isinstance(self.sender, PreparesBatches) else None
        if prepare is not None:  # the messages to send; unreadable records are left to ``deliver``
            prepare(
                [e.decoded for lane in lanes for e in lane if isinstance(e.decoded, ChannelMessage) and not e.yields]
            )
        try:
            results = list(self._pool.map(self._deliver_lane, lanes))
        finally:
            if prepare is not None:
                prepare(())
        return sorted((r for failed in results for r in failed), key=lambda r: (r.partition_id, r.offset))

    def _deliver_lane(self, lane: Lane) -> list[KafkaRecord]:
        failed = []
        for entry in lane:
            record = entry.record
            try:
                try:
                    failure = self.deliver(record, entry.decoded, yields=entry.yields)
                except Exception as exc:  # Kafka did not acknowledge a deferral or dead letter (or a bug)
                    failure = f"{type(exc).__name__}: {exc}"
                if failure is not None:
                    logger.warning(
                        "record reported failed, the event-source mapping will retry it",
                        source=record.partition_id,
                        offset=record.offset,
                        error=failure,
                    )
                    failed.append(record)
            finally:
                logger.thread_safe_remove_keys(["correlation_id"])
        return failed

    def deliver(self, record: KafkaRecord, decoded: Decoded | None = None, *, yields: bool = False) -> str | None:
        """Handle one record (``decoded``: its message, or why it has none, when the batch decoded it already;
        ``yields``: it yields its turn); None when it is done, else why it is to be reported failed. Raises when
        Kafka does not acknowledge its deferral or dead letter (it is to be reported failed then too)."""
        # Every log line about this record carries the request's correlation id (from ingest, via Kafka).
        logger.thread_safe_append_keys(correlation_id=correlation_id_from_headers(record.headers))
        decoded = decoded if decoded is not None else _decode(record)
        retry = RetryState.of(record)
        outcome = self._decide(record, decoded, retry, yields=yields)
        message = decoded if isinstance(decoded, ChannelMessage) else None
        return self._outcomes.apply(record, outcome, message, retry)

    def _decide(self, record: KafkaRecord, decoded: Decoded, retry: RetryState, *, yields: bool) -> Outcome:
        if isinstance(decoded, PoisonRecordError):
            return Unreadable(decoded.reason)
        if decoded.channel != self.settings.channel:
            return Unreadable(f"channel {decoded.channel.value!r} on the {self.settings.channel.value} topic")
        logger.thread_safe_append_keys(correlation_id=decoded.correlation_id)
        if yields:
            return YieldTurn()
        return self._sending.send(decoded, record.partition_id, retry.not_before)


def _decode(record: KafkaRecord) -> Decoded:
    try:
        return decode_envelope(record, ChannelMessage, CHANNEL_SCHEMAS)
    except PoisonRecordError as exc:
        return exc
