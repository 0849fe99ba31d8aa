"""What the delivery viewer knows, and how it learns it without slowing the pipeline.

- :class:`Feed`: a background thread of the local stack reads ``notifications.requested`` and
  ``notifications.dlq`` from the beginning with its own consumer (partitions assigned, no consumer group, nothing
  committed: the pipeline's groups and offsets are untouched). Kafka serves it from the same log the functions
  read; nothing is added to a request's path. It keeps the newest notifications (bounded) and every dead letter.
- :class:`StatusBoard`: channel status, read only when a viewer page asks (its poll): the detail page with the
  store read ``GET /v1/notifications/{id}`` uses (``DynamoStatusView.get``), the list page with key lookups of
  the same rows (:class:`BatchStatusReader`), a bounded number per poll; each notification first 2 s after it
  appeared, then at most every 2 s while in flight, every 10 s once sent, every minute once final (rows off the
  page five times less often). The list page's first paint reads each row it shows that was never read, so that
  it opens with the status each notification has.
- Replays (:meth:`Feed.replay`) go through the redrive tool's own logic (``ops.redrive.select``/``replay``).
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from notifications.contracts.envelopes import REQUESTED_SCHEMAS, NotificationRequested
from notifications.contracts.keys import NotificationKey, NotificationRef
from notifications.contracts.status_view import NotificationStatus
from notifications.dead_letters import DeadLetter, read_dead_letters
from notifications.errors import PoisonRecordError
from notifications.kafka.msk_event import KafkaRecord
from notifications.records import decode_envelope
from viewer.inbox import Tracked

log = logging.getLogger("viewer")

REQUESTED_TOPIC = "notifications.requested"
DLQ_TOPIC = "notifications.dlq"
MAX_NOTIFICATIONS = 5000

# States after which nothing more is expected (read again only rarely); every other state is in flight.
FINAL_STATES = frozenset({"failed", "dead", "delivered", "bounced", "complained", "undeliverable"})
# A channel that reached its provider: a dead letter of it is settled (e.g. replayed with the redrive tool).
REACHED_STATES = frozenset({"sent", "delivered"})


def notification_ref(key: str) -> NotificationRef:
    """The status key ``<caller>/<id>`` (or a bare id) as the store's reference."""
    caller, _, bare = key.rpartition("/")
    return NotificationKey(caller, UUID(bare)) if caller else UUID(bare)


@dataclass(frozen=True)
class Letter:
    """A dead letter and the notification/channel it belongs to (when its record says)."""

    letter: DeadLetter
    notification_key: str | None
    channel: str | None

    @property
    def position(self) -> str:
        return self.letter.position


def _letter(letter: DeadLetter) -> Letter:
    original, value = letter.original, letter.fields()
    nid, caller = value.get("notification_id"), value.get("caller")
    key = (f"{caller}/{nid}" if caller else str(nid)) if nid else None
    channel = value.get("channel") or (
        original.topic.removeprefix("notifications.") if original and original.topic != REQUESTED_TOPIC else None
    )
    return Letter(letter, key, channel)


class Feed:
    """The viewer's Kafka reader (see the module docstring); :meth:`start` runs it in a daemon thread."""

    def __init__(self, bootstrap: str, *, replayed_file: Path | None = None) -> None:
        self._bootstrap = bootstrap
        self._lock = threading.Lock()
        self._notifications: OrderedDict[str, Tracked] = OrderedDict()
        self._letters: list[Letter] = []
        self._replayed_file = replayed_file
        self._replayed: set[str] = set()
        if replayed_file is not None and replayed_file.exists():
            self._replayed = set(json.loads(replayed_file.read_text()))
        self.seen = 0  # notifications read (the kept ones are the newest MAX_NOTIFICATIONS)
        self.unreadable = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> Feed:
        self._thread = threading.Thread(target=self._run, name="viewer-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

        consumer = KafkaConsumer(
            bootstrap_servers=self._bootstrap.split(","),
            client_id="devstack-viewer",
            group_id=None,
            enable_auto_commit=False,
        )
        try:
            partitions = [
                TopicPartition(topic, p)
                for topic in (REQUESTED_TOPIC, DLQ_TOPIC)
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            while not self._stop.is_set():
                for batch in consumer.poll(timeout_ms=300).values():
                    self.add(KafkaRecord.from_consumer(record) for record in batch)
        except Exception:  # the viewer must never take the stack down
            log.exception("viewer feed stopped")
        finally:
            consumer.close()

    # -- what was read -----------------------------------------------------------------------------------------

    def add(self, records: Iterable[KafkaRecord]) -> None:
        """Take records of the requested topic and of the DLQ (the thread's work; callable directly in tests)."""
        for record in records:
            if record.topic == DLQ_TOPIC:
                letters = [_letter(letter) for letter in read_dead_letters(record)]
                with self._lock:
                    self._letters.extend(letters)
                continue
            try:
                envelope = decode_envelope(record, NotificationRequested, REQUESTED_SCHEMAS)
            except PoisonRecordError:
                self.unreadable += 1
                continue
            tracked = Tracked(
                key=str(envelope.key),
                id=str(envelope.notification_id),
                order_id=envelope.purchase.order_id,
                customer=envelope.customer.name,
                channels=tuple(channel.value for channel in envelope.channels),
                accepted_at=envelope.accepted_at.isoformat(),
                correlation_id=envelope.correlation_id,
                locale=envelope.locale,
            )
            with self._lock:
                if tracked.key in self._notifications:  # published again (an ingest retry): the same notification
                    continue
                self.seen += 1
                self._notifications[tracked.key] = tracked
                while len(self._notifications) > MAX_NOTIFICATIONS:
                    self._notifications.popitem(last=False)

    def notifications(self) -> list[Tracked]:
        """Newest first."""
        with self._lock:
            return list(reversed(self._notifications.values()))

    def notification(self, key: str) -> Tracked | None:
        with self._lock:
            return self._notifications.get(key)

    def letters(self) -> list[Letter]:
        with self._lock:
            return list(self._letters)

    def replayed(self, position: str) -> bool:
        with self._lock:
            return position in self._replayed

    # -- replay ------------------------------------------------------------------------------------------------

    def replay(self, position: str) -> list[tuple[Letter, Exception | None]]:
        """Publish the dead letter(s) at ``position`` back to their source topic, with the redrive tool's logic."""
        from notifications.kafka.producer import KafkaPublisher  # noqa: PLC0415
        from ops import redrive  # noqa: PLC0415

        letters = self.letters()
        chosen = redrive.select([entry.letter for entry in letters], [redrive.parse_position(position)])
        publisher = KafkaPublisher(redrive.kafka_settings(bootstrap=self._bootstrap, env={}))
        try:
            results = redrive.replay(chosen, publisher)
        finally:
            publisher.close()
        by_letter = {id(entry.letter): entry for entry in letters}
        answer = [(by_letter[id(letter)], error) for letter, error in zip(chosen, results, strict=True)]
        if all(error is None for _, error in answer):
            with self._lock:
                self._replayed.add(position)
                if self._replayed_file is not None:
                    self._replayed_file.write_text(json.dumps(sorted(self._replayed)))
        return answer


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class BatchStatusReader:
    """The status items of many notifications in ``BatchGetItem`` calls on their exact keys (the notification's
    own item and one row per channel), read as ``GET /v1/notifications/{id}`` reads them
    (``notifications.status.read_status``).

    The list page's read: one call for many notifications instead of a ``Query`` each (``DynamoStatusView.get``,
    which the detail page uses). BatchGetItem takes at most 100 keys per call, each key once, and may answer some
    in ``UnprocessedKeys``, to be asked again
    (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html).
    """

    MAX_KEYS = 100

    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table = table_name
        self._ddb = dynamodb
        self.calls = 0

    def __call__(self, notifications: Sequence[Tracked]) -> dict[str, NotificationStatus | None]:
        from notifications.status import NOTIFICATION_ITEM, read_status  # noqa: PLC0415

        wanted = dict.fromkeys(
            (tracked.key, sort_key) for tracked in notifications for sort_key in (NOTIFICATION_ITEM, *tracked.channels)
        )
        keys = [{"notification_id": {"S": key}, "channel": {"S": sort_key}} for key, sort_key in wanted]
        items: dict[str, list[dict[str, Any]]] = {}
        for chunk in _chunks(keys, self.MAX_KEYS):
            request: dict[str, Any] = {self._table: {"Keys": list(chunk), "ConsistentRead": True}}
            while request:
                self.calls += 1
                answer = self._ddb.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    items.setdefault(item["notification_id"]["S"], []).append(item)
                request = answer.get("UnprocessedKeys") or {}
        return {
            tracked.key: read_status(notification_ref(tracked.key), items.get(tracked.key, []))
            for tracked in notifications
        }


class StatusBoard:
    """Channel status of the notifications a page shows, read on demand and cached (see the module docstring).

    ``read_one`` is the store read ``GET /v1/notifications/{id}`` uses (the detail page: history included);
    ``read_many`` reads the rows of many notifications at once (the list page, :class:`BatchStatusReader`)."""

    def __init__(
        self,
        read_one: Callable[[NotificationRef], NotificationStatus | None],
        read_many: Callable[[Sequence[Tracked]], dict[str, NotificationStatus | None]],
        *,
        first_read_seconds: float = 2.0,
        in_flight_seconds: float = 2.0,
        sent_seconds: float = 10.0,
        final_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read_one = read_one
        self._read_many = read_many
        # A poll first reads a notification this long after the page first listed it: before, no channel can have
        # been sent (the fanout's and the sender's batching windows alone take longer), so it shows "accepted".
        self._first_read = first_read_seconds
        self._first_seen: dict[str, float] = {}
        self._ages = {"in_flight": in_flight_seconds, "sent": sent_seconds, "final": final_seconds}
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (status, when read, read by read_one: with the history the list's key lookups leave out)
        self._cache: dict[str, tuple[NotificationStatus | None, float, bool]] = {}
        self._watched: dict[str, float] = {}  # key -> until when it is read as in flight whatever its state
        self.reads = 0  # notifications read

    OFF_PAGE_SLOWER = 5.0

    def _stale(self, tracked: Tracked, now: float, slow: float = 1.0, *, unread_now: bool = False) -> bool:
        replayed = self._watched.get(tracked.key, float("-inf")) > now
        entry = self._cache.get(tracked.key)
        if entry is None:
            first_seen = self._first_seen.setdefault(tracked.key, now)
            return replayed or unread_now or now - first_seen >= self._first_read
        status, read_at, _ = entry
        states = [c.state.value for c in status.channels] if status is not None else []
        in_flight = len(states) < len(tracked.channels) or any(s not in FINAL_STATES and s != "sent" for s in states)
        if replayed or in_flight:
            age = self._ages["in_flight"]
        elif "sent" in states:
            age = self._ages["sent"]
        else:
            age = self._ages["final"]
        return now - read_at >= age * slow

    def cached(self, key: str) -> NotificationStatus | None:
        with self._lock:
            entry = self._cache.get(key)
        return entry[0] if entry else None

    def current(self, tracked: Tracked) -> NotificationStatus | None:
        """The detail page's read: the store's ``get`` when the cached answer is stale."""
        with self._lock:
            entry = self._cache.get(tracked.key)
            if entry is not None and entry[2] and not self._stale(tracked, self._clock()):
                return entry[0]
        status = self._read_one(notification_ref(tracked.key))
        with self._lock:
            self.reads += 1
            self._cache[tracked.key] = (status, self._clock(), True)
        return status

    def watch(self, key: str, seconds: float = 60.0) -> None:
        """Read ``key`` as in flight for a while, final state or not (it was just replayed)."""
        with self._lock:
            self._cache.pop(key, None)
            self._watched[key] = self._clock() + seconds

    def refresh(
        self, shown: Sequence[Tracked], others: Sequence[Tracked], budget: int, *, unread_now: bool = False
    ) -> None:
        """Read the stale ones among the notifications ``shown`` on the page, then among ``others`` (for the
        counters; their ages ``OFF_PAGE_SLOWER`` times longer), each once, at most ``budget`` of them.

        ``unread_now``: a notification never read is read now, not ``first_read_seconds`` after it was first
        listed (a page's first paint shows the status each row has, however new the page is)."""
        candidates = itertools.chain(((t, 1.0) for t in shown), ((t, self.OFF_PAGE_SLOWER) for t in others))
        seen: set[str] = set()
        stale: list[Tracked] = []
        with self._lock:
            now = self._clock()
            for tracked, slow in candidates:
                if len(stale) >= budget:
                    break
                if tracked.key not in seen and self._stale(tracked, now, slow, unread_now=unread_now):
                    stale.append(tracked)
                seen.add(tracked.key)
        if not stale:
            return
        found = self._read_many(stale)
        with self._lock:
            self.reads += len(stale)
            now = self._clock()
            for tracked in stale:
                self._cache[tracked.key] = (found.get(tracked.key), now, False)
            if len(self._cache) > 2 * MAX_NOTIFICATIONS:  # forget the notifications no page lists any more
                listed = {t.key for t in itertools.chain(shown, others)}
                self._cache = {key: entry for key, entry in self._cache.items() if key in listed}
                self._first_seen = {key: when for key, when in self._first_seen.items() if key in listed}


def channel_state(status: NotificationStatus | None, channel: str) -> str:
    """A channel's state as the page shows it: its row's, or ``accepted`` while it has none yet."""
    for entry in status.channels if status is not None else ():
        if entry.channel == channel:
            return str(entry.state.value)
    return "accepted"


def counters(feed: Feed, board: StatusBoard) -> dict[str, int]:
    """Deliveries (notification x channel) by state over the notifications kept, and the open dead letters."""
    counts = {"notifications": 0, "accepted": 0, "sent": 0, "delivered": 0, "failed": 0, "in DLQ": 0}
    for tracked in feed.notifications():
        counts["notifications"] += 1
        status = board.cached(tracked.key)
        for channel in tracked.channels:
            counts["accepted"] += 1
            state = channel_state(status, channel)
            if state in ("sent", "delivered"):
                counts[state] += 1
            elif state in FINAL_STATES:
                counts["failed"] += 1
    counts["in DLQ"] = len(open_letters(feed, board))
    return counts


def open_letters(feed: Feed, board: StatusBoard) -> list[Letter]:
    """Dead letters not replayed from the viewer and whose channel has not reached its provider since."""
    found = []
    for entry in feed.letters():
        if feed.replayed(entry.position):
            continue
        status = board.cached(entry.notification_key) if entry.notification_key else None
        if entry.channel and channel_state(status, entry.channel) in REACHED_STATES:
            continue
        found.append(entry)
    return found
