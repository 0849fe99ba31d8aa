"""Sender domain: deliver a batch of channel messages effectively once, at the channel's pace, never losing one.

- A send is claimed on its channel's status row before the provider is called, and its outcome written to the
  same row: two store writes per delivery (``notifications.status``). A redelivered record whose channel the
  provider already has is skipped; one whose send is in flight elsewhere is retried later. The row is keyed by
  caller, notification and channel; the recipient is fixed by the notification.
- A batch is delivered concurrently, one lane per Kafka key (the notification id), so one notification's
  records stay in order and the same delivery is never in flight twice; every provider call takes a slot from
  the channel's rate limiter first (``notifications.pacing``).
- Transient provider errors are retried a few times inside the invocation; if they persist, or the provider is
  throttling us or down (its circuit is open), the record is *deferred*: published again on its own topic with
  ``retry-*`` headers (attempt, not-before, first failure) and the original counts as done. A deferred record
  waits for its not-before time when it comes round again, so an outage is waited out without using up the
  event-source mapping's retries, for up to the outage budget. Only then is it dead-lettered.
- When more records wait in a partition than it can send within a short horizon, each caller takes only its
  fair share of the partition's slots (``notifications.fair_share``); its other records *yield their turn*:
  deferred as they are, due at once, with no attempt counted, so the records behind them in the partition are
  reached and one caller's burst does not hold up the others.
- Permanent errors and unreadable records go to the DLQ (the record is then done) and mark the status failed.
- A record raises (and the event-source mapping retries it) only when Kafka does not acknowledge its deferral
  or dead letter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.channels.base import ChannelSender, PreparesBatches
from notifications.contracts.envelopes import CHANNEL_SCHEMAS, ChannelMessage
from notifications.errors import PermanentDeliveryError, PoisonRecordError, TransientDeliveryError
from notifications.fair_share import FairShare
from notifications.kafka.msk_event import KafkaRecord
from notifications.kafka.producer import OutgoingRecord, Publisher, publish_one
from notifications.observability import correlation_id_from_headers, logger, metrics
from notifications.pacing import Circuit, RateLimiter
from notifications.records import dead_letter, decode_envelope
from notifications.settings import SenderSettings
from notifications.status import Claim, StatusStore

_MAX_IN_PROCESS_WAIT = 2.0  # a longer Retry-After defers the record instead of holding the invocation
_RESERVE_SECONDS = 5.0  # left for the provider call, status writes and the batch response

RETRY_ATTEMPT = "retry-attempt"
RETRY_NOT_BEFORE = "retry-not-before"  # epoch milliseconds
RETRY_FIRST_FAILURE = "retry-first-failure"  # epoch milliseconds
RETRY_REASON = "retry-reason"
YIELD_REASON = "over the caller's fair share of the channel's rate"
_NO_CALLER = "-"  # the share of v1 records, written before callers existed
RETRY_HEADERS = frozenset({RETRY_ATTEMPT, RETRY_NOT_BEFORE, RETRY_FIRST_FAILURE, RETRY_REASON})


Decoded = ChannelMessage | PoisonRecordError  # a record's message, or why it can never be read

# How long a claimed send blocks a redelivery when the invocation's remaining time is unknown (outside Lambda).
DEFAULT_LEASE_SECONDS = 60.0


class _SendInFlightError(Exception):
    """Internal: another attempt holds the send's claim; the record is retried after it."""


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


class _AlreadySentError(Exception):
    """Internal: the provider has this channel's message already (a redelivery); nothing is sent."""

    def __init__(self, provider_message_id: str | None) -> None:
        super().__init__(provider_message_id)
        self.provider_message_id = provider_message_id


class _DeferError(Exception):
    """Internal: the provider is not to be called now; carries when the record should be tried again.

    ``attempted``: whether this counts as a failed attempt (the provider is down) or only as "not yet" (the
    record's time has not come within this invocation).
    """

    def __init__(self, reason: str, not_before: float, *, attempted: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.not_before = not_before
        self.attempted = attempted


@dataclass
class DeliveryService:
    settings: SenderSettings
    sender: ChannelSender
    status: StatusStore
    publisher: Publisher
    wall_clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    _context: LambdaContext | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._limiters: dict[str, RateLimiter] = {}
        self._shares: dict[str, FairShare] = {}
        self._circuit = Circuit(
            self.settings.circuit_failure_threshold,
            self.settings.circuit_open_seconds,
            self.settings.circuit_max_open_seconds,
        )
        self._pool = ThreadPoolExecutor(max_workers=self.settings.send_concurrency, thread_name_prefix="send")

    def bind(self, context: LambdaContext | None) -> None:
        """Let claims lapse with the invocation (a crashed send is retried later) and waits end before it does."""
        self._context = context

    # -- the batch -------------------------------------------------------------------------------------------

    def deliver_batch(self, records: Sequence[KafkaRecord]) -> list[KafkaRecord]:
        """Deliver a batch; answer the records to report as failed (Kafka did not take their deferral)."""
        decoded = [(record, _decode(record)) for record in records]
        yielding = self._yielding(decoded)
        lanes: dict[tuple[str, bytes | None], list[tuple[KafkaRecord, Decoded]]] = {}
        for record, message in decoded:
            lanes.setdefault((record.partition_id, record.key), []).append((record, message))
        for partition_id in {partition for partition, _ in lanes}:
            self._limiter(partition_id)  # created here, in one thread
        prepare = self.sender.prepare if isinstance(self.sender, PreparesBatches) else None
        if prepare is not None:  # unreadable records are left to ``deliver``
            prepare([m for r, m in decoded if isinstance(m, ChannelMessage) and _position(r) not in yielding])
        # Lanes that only yield go first (a quick Kafka write each), then the others, the callers taking turns.
        yield_only = [lane for lane in lanes.values() if all(_position(r) in yielding for r, _ in lane)]
        sending = [lane for lane in lanes.values() if not all(_position(r) in yielding for r, _ in lane)]
        ordered = [*yield_only, *_by_turns(sending)]
        try:
            results = list(self._pool.map(lambda lane: self._deliver_lane(lane, yielding), ordered))
        finally:
            if prepare is not None:
                prepare(())
        return sorted((r for failed in results for r in failed), key=lambda r: (r.partition_id, r.offset))

    def _yielding(self, decoded: Sequence[tuple[KafkaRecord, Decoded]]) -> set[tuple[str, int]]:
        """The records (partition and offset) that yield their turn to other callers' records in this batch."""
        horizon = self.settings.fair_share_horizon_seconds
        rate = self.settings.partition_rate
        if not horizon or rate is None:
            return set()
        waiting: dict[str, list[tuple[KafkaRecord, str]]] = {}
        for record, message in decoded:
            if isinstance(message, ChannelMessage) and message.channel == self.settings.channel:
                waiting.setdefault(record.partition_id, []).append((record, message.caller or _NO_CALLER))
        yielding: set[tuple[str, int]] = set()
        for partition_id, entries in waiting.items():
            share = self._shares.get(partition_id)
            if share is None:
                share = self._shares[partition_id] = FairShare(
                    rate,
                    horizon=horizon,
                    window=self.settings.fair_share_window_seconds,
                    weights=self.settings.caller_weights,
                )
            takes = share.plan([caller for _, caller in entries])
            stopped: set[bytes | None] = set()  # a key whose record yields: its later records yield too (order)
            turns: dict[str, list[int]] = {}
            for (record, caller), take in zip(entries, takes, strict=True):
                if not take or record.key in stopped:
                    yielding.add(_position(record))
                    stopped.add(record.key)
                turns.setdefault(caller, [0, 0])[0 if _position(record) in yielding else 1] += 1
            if any(yielded for yielded, _ in turns.values()):
                logger.info(
                    "fair share: records over their caller's share yield their turn",
                    source=partition_id,
                    slots=share.capacity,
                    yielded={c: y for c, (y, _) in turns.items() if y},
                    sending={c: s for c, (_, s) in turns.items() if s},
                )
                metrics.add_metric(name="FairShareYields", unit="Count", value=sum(y for y, _ in turns.values()))
        return yielding

    def _deliver_lane(
        self, lane: list[tuple[KafkaRecord, Decoded]], yielding: set[tuple[str, int]]
    ) -> list[KafkaRecord]:
        failed = []
        for record, message in lane:
            try:
                if _position(record) in yielding and isinstance(message, ChannelMessage):
                    self._yield_turn(record, message)
                else:
                    self.deliver(record, message)
            except Exception as exc:
                logger.warning(
                    "record reported failed, the event-source mapping will retry it",
                    source=record.partition_id,
                    offset=record.offset,
                    error=f"{type(exc).__name__}: {exc}",
                )
                failed.append(record)
            finally:
                logger.thread_safe_remove_keys(["correlation_id"])
        return failed

    def _limiter(self, partition_id: str) -> RateLimiter:
        limiter = self._limiters.get(partition_id)
        if limiter is None:
            rate = self.settings.partition_rate
            limiter = self._limiters[partition_id] = RateLimiter(rate, sleep=self.sleep)
        return limiter

    def _remaining(self) -> float:
        """Seconds this invocation may still spend waiting."""
        if self._context is None:
            return float("inf")
        return self._context.get_remaining_time_in_millis() / 1000 - _RESERVE_SECONDS

    # -- one record ------------------------------------------------------------------------------------------

    def deliver(self, record: KafkaRecord, decoded: Decoded | None = None) -> None:
        """Handle one record (``decoded``: its message, or why it has none, when the batch decoded it already);
        raise to have it (and the rest of its partition) redelivered."""
        # Every log line about this record carries the request's correlation id (from ingest, via Kafka).
        logger.thread_safe_append_keys(correlation_id=correlation_id_from_headers(record.headers))
        try:
            message = _message(decoded if decoded is not None else _decode(record))
            if message.channel != self.settings.channel:
                raise PoisonRecordError(f"channel {message.channel.value!r} on the {self.settings.channel.value} topic")
        except PoisonRecordError as exc:
            logger.warning("poison record to DLQ", source=record.partition_id, offset=record.offset, reason=exc.reason)
            metrics.add_metric(name="SenderPoisonRecords", unit="Count", value=1)
            self._dead_letter(record, exc.reason)
            return
        logger.thread_safe_append_keys(correlation_id=message.correlation_id)
        log = {
            "caller": message.caller or "-",
            "notification_id": str(message.notification_id),
            "channel": message.channel.value,
            "order_id": message.purchase.order_id,
        }
        retry = RetryState.of(record)
        try:
            self._wait_until(retry.not_before)
            provider_message_id = self._send_once(message, record.partition_id)
        except _DeferError as deferred:
            self._defer(
                record,
                message,
                retry,
                reason=deferred.reason,
                not_before=deferred.not_before,
                log=log,
                attempted=deferred.attempted,
            )
            return
        except TransientDeliveryError as exc:
            logger.warning(
                "transient delivery failure, deferred",
                reason=exc.reason,
                throttled=exc.throttled,
                ambiguous=exc.ambiguous,
                extra=log,
            )
            metrics.add_metric(name="DeliveryTransientFailures", unit="Count", value=1)
            if exc.ambiguous:
                metrics.add_metric(name="AmbiguousSends", unit="Count", value=1)
            self._defer(
                record,
                message,
                retry,
                reason=exc.reason,
                not_before=self._backoff(retry.attempt, exc),
                log=log,
                attempted=True,
            )
            return
        except PermanentDeliveryError as exc:
            logger.warning("permanent delivery failure, to DLQ", reason=exc.reason, extra=log)
            metrics.add_metric(name="DeliveryPermanentFailures", unit="Count", value=1)
            self._dead_letter(record, exc.reason)
            self._record(self.status.record_failure, message.key, message.channel, exc.reason, final=True)
            return
        except _AlreadySentError as sent:
            logger.info("already delivered, not sent again", provider_message_id=sent.provider_message_id, extra=log)
            metrics.add_metric(name="RedeliveriesSkipped", unit="Count", value=1)
            return
        self._record(self.status.record_sent, message.key, message.channel, provider_message_id)
        logger.info("delivered", provider_message_id=provider_message_id, attempt=retry.attempt + 1, extra=log)
        metrics.add_metric(name="Delivered", unit="Count", value=1)

    def _yield_turn(self, record: KafkaRecord, message: ChannelMessage) -> None:
        """Defer a record over its caller's share as it is: due at once (or when it was due), no attempt counted,
        no failure written, and no claim taken (the delivery's status row is untouched)."""
        logger.thread_safe_append_keys(correlation_id=message.correlation_id)
        retry = RetryState.of(record)
        log = {"caller": message.caller or _NO_CALLER, "notification_id": str(message.notification_id)}
        self._defer(
            record,
            message,
            retry,
            reason=YIELD_REASON,
            not_before=max(retry.not_before, self.wall_clock()),
            log=log,
            attempted=False,
        )

    def _send_once(self, message: ChannelMessage, partition: str) -> str | None:
        """Claim the send on the channel's status row (the first of its two writes), then send; the outcome's write
        (sent, failed) is the caller's, except for a send that never reached its outcome (deferred before its turn,
        or an unexpected error), released here."""
        lease = self._remaining() + _RESERVE_SECONDS if self._context is not None else DEFAULT_LEASE_SECONDS
        try:
            claim = self.status.claim_send(message.key, message.channel, lease)
        except Exception as exc:
            raise TransientDeliveryError(f"status store unavailable: {type(exc).__name__}") from exc
        if claim.outcome is Claim.ALREADY_SENT:
            raise _AlreadySentError(claim.provider_message_id)
        if claim.outcome is Claim.IN_FLIGHT:
            raise _SendInFlightError(f"{message.channel.value} send of {message.notification_id} is in flight")
        try:
            return self._send(message, partition)
        except (TransientDeliveryError, PermanentDeliveryError):
            raise  # the failure's own write ends the claim
        except _DeferError as deferred:
            if not deferred.attempted:
                self._record(self.status.release, message.key, message.channel)
            raise
        except Exception:
            # Neither transient nor permanent (a bug): the record is redelivered, and must find the send free.
            self._record(self.status.release, message.key, message.channel)
            raise

    def _wait_until(self, not_before: float) -> None:
        """Hold a deferred record until its time, if this invocation can; else defer it again as it is."""
        wait = not_before - self.wall_clock()
        if wait <= 0:
            return
        if wait > self._remaining():
            raise _DeferError("not due within this invocation", not_before, attempted=False)
        self.sleep(wait)

    def _send(self, message: ChannelMessage, partition: str) -> str | None:
        """The provider call under the channel's pacing, inside the send's claim; the provider's message id."""
        limiter = self._limiter(partition)
        attempt = 1
        while True:
            wait = self._circuit.admit()
            if wait is not None:
                raise _DeferError("provider unavailable (circuit open)", self.wall_clock() + wait, attempted=True)
            if not limiter.acquire(max_wait=self._remaining()):
                raise _DeferError("no sending slot within this invocation", self.wall_clock() + 1.0, attempted=False)
            try:
                receipt = self.sender.send(message)
            except TransientDeliveryError as exc:
                if exc.throttled:
                    limiter.pause(exc.retry_after or 1.0)
                else:
                    self._circuit.failure()
                delay = self._in_process_delay(attempt, exc)
                if delay is None:
                    raise
                self.sleep(delay)
                attempt += 1
                continue
            except PermanentDeliveryError:
                self._circuit.success()  # the provider answered: it is up
                raise
            self._circuit.success()
            return receipt.provider_message_id

    def _in_process_delay(self, attempt: int, exc: TransientDeliveryError) -> float | None:
        """Seconds to wait before another attempt in this invocation, or None to defer the record."""
        if attempt >= self.settings.provider_attempts or self._circuit.is_open:
            return None
        delay: float = self.settings.provider_backoff_seconds * float(2 ** (attempt - 1))
        if exc.retry_after is not None:
            if exc.retry_after > _MAX_IN_PROCESS_WAIT:
                return None
            delay = max(delay, exc.retry_after)
        if delay > self._remaining():
            return None
        return delay

    def _backoff(self, attempt: int, exc: TransientDeliveryError) -> float:
        """When a record whose attempts failed transiently is tried next (epoch seconds)."""
        settings = self.settings
        delay = min(settings.retry_max_delay_seconds, settings.retry_base_delay_seconds * 2.0**attempt)
        if exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, settings.retry_max_delay_seconds))
        return self.wall_clock() + delay

    # -- outcomes --------------------------------------------------------------------------------------------

    def _defer(
        self,
        record: KafkaRecord,
        message: ChannelMessage,
        retry: RetryState,
        *,
        reason: str,
        not_before: float,
        log: dict[str, str],
        attempted: bool,
    ) -> None:
        """Publish the record again on its topic to be tried at ``not_before``; past the budget, dead-letter it."""
        now = self.wall_clock()
        # The outage budget counts from the first failed attempt; a record that only waited has none yet.
        first_failure = retry.first_failure if retry.first_failure is not None or not attempted else now
        if attempted and first_failure is not None and now - first_failure > self.settings.outage_budget_seconds:
            budget = self.settings.outage_budget_seconds
            final = f"undelivered for {now - first_failure:.0f} s (outage budget {budget} s): {reason}"
            logger.warning("outage budget exhausted, to DLQ", reason=final, extra=log)
            metrics.add_metric(name="DeliveryBudgetExhausted", unit="Count", value=1)
            self._dead_letter(record, final)
            self._record(self.status.record_failure, message.key, message.channel, final, final=True)
            return
        attempt = retry.attempt + (1 if attempted else 0)
        if attempted:
            self._record(self.status.record_failure, message.key, message.channel, reason, final=False)
        kept = tuple((k, v) for k, v in record.headers if k not in RETRY_HEADERS)
        publish_one(
            self.publisher,
            OutgoingRecord(
                topic=record.topic,
                key=record.key,
                value=record.value or b"",
                headers=(
                    *kept,
                    (RETRY_ATTEMPT, str(attempt).encode()),
                    (RETRY_NOT_BEFORE, str(int(not_before * 1000)).encode()),
                    *(
                        ((RETRY_FIRST_FAILURE, str(int(first_failure * 1000)).encode()),)
                        if first_failure is not None
                        else ()
                    ),
                    (RETRY_REASON, reason.encode()[:500]),
                ),
            ),
        )
        metrics.add_metric(name="DeliveriesDeferred", unit="Count", value=1)
        if attempted:
            logger.info("deferred", reason=reason, attempt=attempt, wait_seconds=round(not_before - now, 3), extra=log)

    def _dead_letter(self, record: KafkaRecord, reason: str) -> None:
        # Raises BrokerUnavailableError when the DLQ write is not acknowledged: the record is then retried.
        publish_one(
            self.publisher,
            dead_letter(record, reason, topic=self.settings.topic_dlq, stage=f"sender-{self.settings.channel.value}"),
        )

    @staticmethod
    def _record(write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        # The status table is a view: a failed write must not turn a finished delivery into a retry.
        try:
            write(*args, **kwargs)
        except Exception:
            logger.exception("status write failed")


def _position(record: KafkaRecord) -> tuple[str, int]:
    return record.partition_id, record.offset


def _by_turns(lanes: list[list[tuple[KafkaRecord, Decoded]]]) -> list[list[tuple[KafkaRecord, Decoded]]]:
    """The lanes with their callers taking turns (first lane of each caller, then the second, ...): the rate
    limiter hands out slots in the order sends ask, so a caller with few records is not left for last."""
    by_caller: dict[str, list[list[tuple[KafkaRecord, Decoded]]]] = {}
    for lane in lanes:
        message = lane[0][1]
        caller = message.caller or _NO_CALLER if isinstance(message, ChannelMessage) else _NO_CALLER
        by_caller.setdefault(caller, []).append(lane)
    queues = list(by_caller.values())
    return [queue[i] for i in range(max(map(len, queues), default=0)) for queue in queues if i < len(queue)]


def _decode(record: KafkaRecord) -> Decoded:
    try:
        return decode_envelope(record, ChannelMessage, CHANNEL_SCHEMAS)
    except PoisonRecordError as exc:
        return exc


def _message(decoded: Decoded) -> ChannelMessage:
    if isinstance(decoded, PoisonRecordError):
        raise decoded
    return decoded
