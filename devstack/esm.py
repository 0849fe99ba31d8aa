"""A local Lambda event-source mapping for Kafka: polls topics and invokes a function with byte-exact MSK events.

It behaves as the Lambda developer guide describes MSK triggers ("Configuring Amazon MSK event sources",
https://docs.aws.amazon.com/lambda/latest/dg/with-msk-process.html; "Configuring error handling controls for Kafka
event sources", https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html; the on-failure record,
:mod:`devstack.on_failure`); docs/local-stack.md ("The Kafka event-source mapping") lists what is read from the
template and what the emulator chooses where AWS is silent. Details the guide leaves to the reader: a bisect is not
a retry (a failing batch of one record is); the retries of a partition count from the same offset; the back-off
(0.5 s, doubling, at most 10 s; none after a bisect) is the emulator's.

The rules are pure functions (:func:`plan_batch`, :func:`read_response`, :func:`decide`) over records and the
function's outcome; :class:`KafkaEventSourceMapping` only does the Kafka I/O around them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from devstack.lambda_context import LocalLambdaContext
from devstack.msk_events import LOCAL_CLUSTER_ARN, build_event
from devstack.on_failure import (
    RECORD_AGE_EXCEEDED,
    RETRIES_EXHAUSTED,
    UNHANDLED,
    on_failure_document,
    on_failure_record,
)
from devstack.template_config import KafkaTrigger
from notifications.kafka.msk_event import KafkaRecord
from notifications.kafka.producer import Publisher

log = logging.getLogger("devstack.esm")

Partition = tuple[str, int]


# --------------------------------------------------------------------------- pure rules


@dataclass(frozen=True)
class Rules:
    """The settings of a mapping that decide what happens to a batch."""

    report_batch_item_failures: bool = False
    maximum_retry_attempts: int = -1
    maximum_record_age_seconds: int = -1
    bisect_batch_on_function_error: bool = False

    @classmethod
    def of(cls, trigger: KafkaTrigger) -> Rules:
        return cls(
            report_batch_item_failures=trigger.report_batch_item_failures,
            maximum_retry_attempts=trigger.effective_retry_attempts,
            maximum_record_age_seconds=trigger.maximum_record_age_seconds,
            bisect_batch_on_function_error=trigger.bisect_batch_on_function_error,
        )


@dataclass(frozen=True)
class FunctionError:
    """The invocation failed: the handler raised, or its response was not JSON."""

    message: str


@dataclass(frozen=True)
class FunctionResult:
    """The invocation returned this (JSON-decoded) payload."""

    payload: Any


Outcome = FunctionError | FunctionResult


@dataclass(frozen=True)
class DeadLetter:
    """A record the mapping gives up on, with what its on-failure record says about the failure."""

    record: KafkaRecord
    reason: str
    # requestContext.condition and approximateInvokeCount; responseContext.functionError (None: the last
    # invocation returned, e.g. with the record in batchItemFailures).
    condition: str = RETRIES_EXHAUSTED
    invocations: int = 0
    function_error: str | None = None


@dataclass(frozen=True)
class RetryPosition:
    """A partition being retried from ``offset``; ``failures`` invocations have failed there so far."""

    offset: int
    failures: int


@dataclass(frozen=True)
class MappingState:
    """What a mapping remembers between batches."""

    retries: Mapping[Partition, RetryPosition] = field(default_factory=dict)
    # Size of the next batch after a bisect; None means BatchSize.
    batch_limit: int | None = None
    # Sizes of the second halves of bisected batches, still to be tried on their own (last one first).
    pending_halves: tuple[int, ...] = ()


@dataclass(frozen=True)
class BatchPlan:
    """A polled batch split into what the function gets and what is too old to be sent to it."""

    invoke: tuple[KafkaRecord, ...]
    expired: tuple[KafkaRecord, ...] = ()

    @property
    def records(self) -> tuple[KafkaRecord, ...]:
        return self.invoke + self.expired


@dataclass(frozen=True)
class Decision:
    """What to do after a batch: dead-letter, then commit, then seek back (and wait) for retries."""

    commit: Mapping[Partition, int]
    seek: Mapping[Partition, int]
    dead_letters: tuple[DeadLetter, ...]
    state: MappingState
    # Failed invocations so far per partition that is retried (0 after a bisect); drives the retry back-off.
    failures: Mapping[Partition, int] = field(default_factory=dict)
    error: str | None = None


def partition_of(record: KafkaRecord) -> Partition:
    return (record.topic, record.partition)


def _by_partition(records: Iterable[KafkaRecord]) -> dict[Partition, list[KafkaRecord]]:
    groups: dict[Partition, list[KafkaRecord]] = {}
    for record in records:
        groups.setdefault(partition_of(record), []).append(record)
    return groups


def plan_batch(rules: Rules, records: Sequence[KafkaRecord], now_ms: int) -> BatchPlan:
    """Leave out records older than MaximumRecordAgeInSeconds (they go to the on-failure destination)."""
    if rules.maximum_record_age_seconds < 0:
        return BatchPlan(invoke=tuple(records))
    oldest_allowed = now_ms - rules.maximum_record_age_seconds * 1000
    return BatchPlan(
        invoke=tuple(r for r in records if r.timestamp >= oldest_allowed),
        expired=tuple(r for r in records if r.timestamp < oldest_allowed),
    )


@dataclass(frozen=True)
class InvalidResponse:
    """A ``batchItemFailures`` answer Lambda cannot apply: the whole batch counts as failed."""

    reason: str


def _identifier(item: Any, names: Mapping[str, Partition], offsets: Mapping[Partition, set[int]]) -> Any:
    """(partition, offset) named by one ``batchItemFailures`` item, or an :class:`InvalidResponse`."""
    identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
    if not isinstance(identifier, dict) or not identifier:
        return InvalidResponse(f"item {item!r} has no itemIdentifier object")
    name, offset = identifier.get("partition"), identifier.get("offset")
    if not isinstance(name, str) or not name:
        return InvalidResponse(f"itemIdentifier {identifier!r} has no partition")
    problem = None
    if isinstance(offset, bool) or not isinstance(offset, int):
        problem = f"itemIdentifier {identifier!r} has no integer offset"
    elif name not in names:
        problem = f"partition {name!r} is not in the batch"
    elif offset not in offsets[names[name]]:
        problem = f"offset {offset} of {name} is not in the batch"
    return InvalidResponse(problem) if problem else (names[name], offset)


def read_response(batch: Sequence[KafkaRecord], payload: Any) -> dict[Partition, set[int]] | InvalidResponse:
    """The failed offsets per partition named by a ``batchItemFailures`` response, or why it is invalid."""
    if payload is not None and not isinstance(payload, dict):
        return InvalidResponse(f"response is a JSON {type(payload).__name__}, not an object")
    failures = (payload or {}).get("batchItemFailures")
    if failures is None:
        return {}
    if not isinstance(failures, list):
        return InvalidResponse("batchItemFailures is not a list")
    offsets = {pid: {r.offset for r in group} for pid, group in _by_partition(batch).items()}
    names = {f"{topic}-{number}": (topic, number) for topic, number in offsets}
    failed: dict[Partition, set[int]] = {}
    for item in failures:
        found = _identifier(item, names, offsets)
        if isinstance(found, InvalidResponse):
            return found
        failed.setdefault(found[0], set()).add(found[1])
    return failed


def _failures_of(
    rules: Rules, plan: BatchPlan, outcome: Outcome | None
) -> tuple[str | None, dict[Partition, set[int]]]:
    """Why the whole batch failed (None if it did not), and the offsets reported as failed per partition."""
    if isinstance(outcome, FunctionError):
        return f"function error: {outcome.message}", {}
    if isinstance(outcome, FunctionResult) and rules.report_batch_item_failures:
        parsed = read_response(plan.invoke, outcome.payload)
        if isinstance(parsed, InvalidResponse):
            return f"invalid batchItemFailures response: {parsed.reason}", {}
        return None, parsed
    return None, {}


@dataclass
class _Builder:
    """Collects the per-partition parts of a :class:`Decision`."""

    rules: Rules
    retries: dict[Partition, RetryPosition]
    commit: dict[Partition, int] = field(default_factory=dict)
    seek: dict[Partition, int] = field(default_factory=dict)
    failures: dict[Partition, int] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)

    def expire(self, records: Iterable[KafkaRecord], earlier: RetryPosition | None = None) -> None:
        reason = f"record older than MaximumRecordAgeInSeconds ({self.rules.maximum_record_age_seconds})"
        for r in records:
            invocations = earlier.failures if earlier is not None and earlier.offset == r.offset else 0
            self.dead.append(DeadLetter(r, reason, condition=RECORD_AGE_EXCEEDED, invocations=invocations))

    def done(self, partition: Partition, end: int) -> None:
        self.commit[partition] = end
        self.retries.pop(partition, None)

    def retry(self, partition: Partition, resume: int, count: int) -> None:
        self.commit[partition] = resume
        self.seek[partition] = resume
        self.failures[partition] = count
        if count:
            self.retries[partition] = RetryPosition(resume, count)
        else:
            self.retries.pop(partition, None)


def decide(rules: Rules, state: MappingState, plan: BatchPlan, outcome: Outcome | None) -> Decision:
    """Apply the mapping's rules to one handled batch (``outcome`` is None when nothing was invoked)."""
    error, reported = _failures_of(rules, plan, outcome)
    # A function error on a batch of several records is split instead of counted as a retry.
    bisect = error is not None and rules.bisect_batch_on_function_error and len(plan.invoke) > 1
    invoked, expired = _by_partition(plan.invoke), _by_partition(plan.expired)
    out = _Builder(rules, dict(state.retries))
    for partition in dict.fromkeys([*invoked, *expired]):
        records, too_old = invoked.get(partition, []), expired.get(partition, [])
        end = max(r.offset for r in records + too_old) + 1
        failed = records if error is not None else [r for r in records if r.offset in reported.get(partition, ())]
        earlier = state.retries.get(partition)
        if not failed:
            out.expire(too_old, earlier)
            out.done(partition, end)
            continue
        resume = failed[0].offset
        count = (earlier.failures if earlier and earlier.offset == resume else 0) + (0 if bisect else 1)
        if not bisect and 0 <= rules.maximum_retry_attempts < count:
            reason = f"{error or 'reported in batchItemFailures'}; retries exhausted ({rules.maximum_retry_attempts})"
            function_error = UNHANDLED if isinstance(outcome, FunctionError) else None
            out.expire(too_old, earlier)
            # approximateInvokeCount: failures are counted for the offset the partition resumes from.
            out.dead.extend(DeadLetter(r, reason, invocations=count, function_error=function_error) for r in failed)
            out.done(partition, end)
            continue
        # Records from ``resume`` on come back with the retry (an expired one is judged again then).
        out.expire((r for r in too_old if r.offset < resume), earlier)
        out.retry(partition, resume, 0 if bisect else count)
    halves = state.pending_halves
    limit: int | None = None
    if bisect:
        limit = (len(plan.invoke) + 1) // 2
        halves = (*halves, len(plan.invoke) - limit)
    elif error is not None and out.seek:
        limit = state.batch_limit  # the same (part of a) batch is retried as it was
    elif halves:
        limit, halves = halves[-1], halves[:-1]  # this part is done: the other half of the split is next
    return Decision(
        commit=out.commit,
        seek=out.seek,
        dead_letters=tuple(out.dead),
        state=MappingState(retries=out.retries, batch_limit=limit, pending_halves=halves),
        failures=out.failures,
        error=error if error is not None else ("batch item failures" if reported else None),
    )


def retry_delay(failures: int, base: float = 0.5, cap: float = 10.0) -> float:
    """Back-off before retrying a partition after ``failures`` failed invocations (none after a bisect)."""
    if failures <= 0 or base <= 0:
        return 0.0
    return float(min(cap, base * 2 ** (failures - 1)))


# --------------------------------------------------------------------------- invocation


Handler = Callable[[dict[str, Any], Any], Any]


def invoke(
    handler: Handler,
    records: Sequence[KafkaRecord],
    *,
    function_name: str,
    bootstrap: str,
    timeout_seconds: float = 60.0,
    event_source_arn: str = LOCAL_CLUSTER_ARN,
) -> Outcome:
    """Invoke the handler as Lambda does: a JSON event in, a JSON response out, an exception is an error."""
    event = build_event(records, bootstrap_servers=bootstrap, event_source_arn=event_source_arn)
    context = LocalLambdaContext(function_name, timeout_seconds=timeout_seconds)
    try:
        result = handler(json.loads(json.dumps(event)), context)
        return FunctionResult(json.loads(json.dumps(result)))
    except Exception as exc:  # any error of the function is an invocation error, as in Lambda
        return FunctionError(f"{type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- Kafka I/O


@dataclass
class MappingStats:
    invocations: int = 0
    records: int = 0
    errors: int = 0
    dead_letters: int = 0


TOPIC_METADATA_WAIT_SECONDS = 30.0


def await_topic_metadata(
    consumer: Any, topics: Sequence[str], *, timeout: float = TOPIC_METADATA_WAIT_SECONDS, pause: float = 0.2
) -> None:
    """Wait (up to ``timeout``) until the consumer's metadata knows the partitions of every topic, then return.

    Called after subscribing and before the first poll joins the group: a kafka-python leader without a topic's
    metadata assigns nothing to anyone (https://github.com/dpkp/kafka-python/issues/2377; docs/local-stack.md). A
    lookup of a known topic asks the broker nothing; a topic still unknown after ``timeout`` is left to the join.
    """
    deadline = time.monotonic() + timeout
    missing = list(topics)
    while missing:
        missing = [topic for topic in missing if not consumer.partitions_for_topic(topic)]
        if not missing:
            return
        if time.monotonic() >= deadline:
            log.warning("no partition metadata for %s after %.0f s; joining anyway", ", ".join(missing), timeout)
            return
        time.sleep(pause)


class KafkaEventSourceMapping:
    """Runs one mapping: poll, invoke, then commit / seek back / dead-letter as :func:`decide` says."""

    def __init__(
        self,
        trigger: KafkaTrigger,
        handler: Handler,
        *,
        bootstrap: str,
        destination: Publisher | None = None,
        timeout_seconds: float = 60.0,
        backoff: Callable[[int], float] = retry_delay,
        invoke_lock: threading.Lock | None = None,
        clock: Callable[[], float] = time.time,
        consumer_config: Mapping[str, Any] | None = None,
    ) -> None:
        if trigger.on_failure_topic is not None and destination is None:
            raise ValueError(f"{trigger.name}: an on-failure destination needs a publisher")
        self.trigger = trigger
        self.rules = Rules.of(trigger)
        self.stats = MappingStats()
        self.assigned = threading.Event()
        self._handler = handler
        self._bootstrap = bootstrap
        self._destination = destination
        self._timeout = timeout_seconds
        self._backoff = backoff
        self._lock = invoke_lock or threading.Lock()
        self._clock = clock
        self._consumer_config = dict(consumer_config or {})
        self._state = MappingState()
        self._paused_until: dict[Partition, float] = {}

    # -- consumer ------------------------------------------------------------

    def _consumer(self) -> Any:
        from kafka import ConsumerRebalanceListener, KafkaConsumer  # noqa: PLC0415

        mapping = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                mapping._forget({(tp.topic, tp.partition) for tp in revoked})

            def on_partitions_assigned(self, assigned: Any) -> None:
                if assigned:
                    mapping.assigned.set()

        config: dict[str, Any] = {
            "bootstrap_servers": self._bootstrap.split(","),
            "group_id": self.trigger.consumer_group_id,
            "client_id": f"lambda-esm-{self.trigger.function}",
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest" if self.trigger.starting_position == "TRIM_HORIZON" else "latest",
            "max_poll_records": self.trigger.batch_size,
            "session_timeout_ms": 10_000,
            # Heartbeats at Kafka's default (3 s, a third of the session timeout) and fetches that wait up to the
            # 1 s batching window for data (a record still answers a waiting fetch at once): an idle kafka-python
            # consumer then costs half the CPU, and the stack runs one per partition and function.
            "heartbeat_interval_ms": 3_000,
            "fetch_max_wait_ms": 1_000,
            "max_poll_interval_ms": max(300_000, int(self._timeout * 1000) * 2),
            **self._consumer_config,
        }
        consumer = KafkaConsumer(**config)
        consumer.subscribe(list(self.trigger.topics), listener=Listener())
        await_topic_metadata(consumer, self.trigger.topics)  # before the first poll joins the group
        return consumer

    def _forget(self, partitions: set[Partition]) -> None:
        retries = {p: r for p, r in self._state.retries.items() if p not in partitions}
        self._state = replace(self._state, retries=retries)
        for partition in partitions:
            self._paused_until.pop(partition, None)

    def _resume_due(self, consumer: Any) -> None:
        from kafka import TopicPartition  # noqa: PLC0415

        now = time.monotonic()
        due = [p for p, until in self._paused_until.items() if until <= now]
        for partition in due:
            del self._paused_until[partition]
        if due:
            consumer.resume(*(TopicPartition(*p) for p in due))

    def _gather(self, consumer: Any, stop: threading.Event) -> list[Any]:
        """Up to the batch limit, within the batching window counted from the first record."""
        limit = self._state.batch_limit or self.trigger.batch_size
        window = self.trigger.batching_window_seconds
        gathered: list[Any] = []
        deadline: float | None = None
        while not stop.is_set() and len(gathered) < limit:
            wait = 0.5 if deadline is None else max(0.0, deadline - time.monotonic())
            polled = consumer.poll(timeout_ms=int(wait * 1000), max_records=limit - len(gathered))
            for batch in polled.values():
                gathered.extend(batch)
            if not gathered:
                return gathered
            if deadline is None:
                deadline = time.monotonic() + window
            if time.monotonic() >= deadline:
                break
        return gathered

    # -- one batch -----------------------------------------------------------

    def handle(self, records: Sequence[KafkaRecord]) -> Decision:
        """Invoke the function for a polled batch and decide (no Kafka I/O; the runner applies the decision)."""
        self.invoking = True
        try:
            return self._handle(records)
        finally:
            self.invoking = False
            self.last_invocation = time.monotonic()

    def _handle(self, records: Sequence[KafkaRecord]) -> Decision:
        plan = plan_batch(self.rules, records, int(self._clock() * 1000))
        outcome: Outcome | None = None
        if plan.invoke:
            with self._lock:
                outcome = invoke(
                    self._handler,
                    plan.invoke,
                    function_name=self.trigger.function,
                    bootstrap=self._bootstrap,
                    timeout_seconds=self._timeout,
                )
            self.stats.invocations += 1
            self.stats.records += len(plan.invoke)
        decision = decide(self.rules, self._state, plan, outcome)
        if decision.error:
            self.stats.errors += 1
            log.warning(
                "%s: batch of %d: %s; retry from %s",
                self.trigger.function,
                len(plan.invoke),
                decision.error,
                ", ".join(f"{t}-{p}@{o}" for (t, p), o in decision.seek.items()) or "nothing",
            )
        return decision

    def _send_dead_letters(self, letters: Sequence[DeadLetter]) -> bool:
        topic = self.trigger.on_failure_topic
        if not letters:
            return True
        if topic is None or self._destination is None:
            self._log_dead_letters(letters, "discarded (no on-failure destination)")
            return True
        now_ms = int(self._clock() * 1000)
        outgoing = [
            on_failure_record(
                topic,
                letter.record,
                on_failure_document(
                    letter.record,
                    condition=letter.condition,
                    invocations=letter.invocations,
                    function_error=letter.function_error,
                    function=self.trigger.function,
                    event_source_arn=LOCAL_CLUSTER_ARN,
                    bootstrap_servers=self._bootstrap,
                    now_ms=now_ms,
                ),
            )
            for letter in letters
        ]
        errors = [e for e in self._destination.publish_all(outgoing) if e is not None]
        if errors:
            log.error("%s: on-failure destination %s not acknowledged: %s", self.trigger.function, topic, errors[0])
            return False
        self.stats.dead_letters += len(letters)
        self._log_dead_letters(letters, f"to {topic}")
        return True

    def _log_dead_letters(self, letters: Sequence[DeadLetter], fate: str) -> None:
        for letter in letters:
            record = letter.record
            log.warning(
                "%s: %s@%d %s: %s", self.trigger.function, record.partition_id, record.offset, fate, letter.reason
            )

    def _apply(self, consumer: Any, records: Sequence[KafkaRecord], decision: Decision) -> None:
        from kafka import OffsetAndMetadata, TopicPartition  # noqa: PLC0415

        if not self._send_dead_letters(decision.dead_letters):
            # Nothing of this batch is committed: every partition is read again from its first record.
            for partition, group in _by_partition(records).items():
                consumer.seek(TopicPartition(*partition), group[0].offset)
                self._pause(consumer, partition, 1.0)
            return
        self._state = decision.state
        if decision.commit:
            offsets = {TopicPartition(*p): OffsetAndMetadata(o, "", -1) for p, o in decision.commit.items()}
            try:
                consumer.commit(offsets=offsets)
            except Exception as exc:  # a rebalance took the partitions away: the next owner redelivers
                log.warning("%s: commit failed (%s); records will be redelivered", self.trigger.function, exc)
        for partition, offset in decision.seek.items():
            consumer.seek(TopicPartition(*partition), offset)
            self._pause(consumer, partition, self._backoff(decision.failures.get(partition, 0)))

    def _pause(self, consumer: Any, partition: Partition, seconds: float) -> None:
        from kafka import TopicPartition  # noqa: PLC0415

        if seconds > 0:
            consumer.pause(TopicPartition(*partition))
            self._paused_until[partition] = time.monotonic() + seconds

    # When the current poll started (None while invoking or committing), and when the function was last invoked.
    # The worker's watchdog replaces an environment that stops making progress: kafka-python 3.0's consumer can
    # stop fetching after the broker restarts.
    polling_since: float | None = None

    last_invocation: float = 0.0
    invoking: bool = False
    # Since when polls come back empty although an assigned partition has records beyond its position.
    behind_since: float | None = None
    _lag_checked: float = 0.0

    def stalled_for(self) -> float:
        """Seconds this mapping has made no progress: a poll that does not return, a partition waiting for a
        retry (back-off is at most 10 s) that is never redelivered (its fetch never resumes), or a partition with
        records that polls never return."""
        now = time.monotonic()
        polling = 0.0 if self.polling_since is None else now - self.polling_since
        waiting = now - self.last_invocation if self._state.retries and not self.invoking else 0.0
        behind = 0.0 if self.behind_since is None else now - self.behind_since
        return max(polling, waiting, behind)

    def _check_lag(self, consumer: Any) -> None:
        """After an empty poll (every few seconds): is an unpaused partition behind its end offset? kafka-python
        3.0 can stop fetching a partition after a broker restart; the watchdog then replaces the environment."""
        now = time.monotonic()
        if now - self._lag_checked < 5.0:
            return
        self._lag_checked = now
        try:
            assigned = set(consumer.assignment()) - set(consumer.paused())
            ends = consumer.end_offsets(list(assigned)) if assigned else {}
            behind = any(consumer.position(tp) < ends[tp] for tp in assigned)
        except Exception:  # a broker that is away says nothing about this consumer
            return
        if not behind:
            self.behind_since = None
        elif self.behind_since is None:
            self.behind_since = now

    def run(self, stop: threading.Event) -> None:
        """Poll and invoke until ``stop`` is set; the consumer leaves its group cleanly."""
        consumer = self._consumer()
        try:
            while not stop.is_set():
                self._resume_due(consumer)
                self.polling_since = time.monotonic()
                polled = self._gather(consumer, stop)
                self.polling_since = None
                if not polled:
                    self._check_lag(consumer)
                    continue
                self.behind_since = None
                if stop.is_set():
                    continue  # records polled while stopping are not committed: the next run gets them
                records = [KafkaRecord.from_consumer(r) for r in polled]
                self._apply(consumer, records, self.handle(records))
        finally:
            consumer.close(autocommit=False)
