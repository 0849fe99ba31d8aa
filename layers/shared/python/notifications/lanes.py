"""A sender's batch in lanes: one lane per Kafka key, the callers taking turns, the records over their share marked.

- One lane per partition and key (the notification id): a lane's records are handled in order, one at a time,
  so one notification's records stay in order and the same delivery is never in flight twice in an invocation.
  Lanes run concurrently (``notifications.delivery``).
- When more records of a partition wait than it can send within the horizon, each caller takes only its fair
  share of the partition's slots (``notifications.fair_share``, one ``FairShare`` per partition); its other
  records are marked to *yield their turn*, and so is every later record of a key whose record yields (order).
- Lanes that only yield go first (a quick Kafka write each), then the others with their callers taking turns:
  the rate limiter hands out slots in the order sends ask, so a caller with few records is not left for last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from notifications.contracts.envelopes import ChannelMessage
from notifications.errors import PoisonRecordError
from notifications.fair_share import FairShare
from notifications.kafka.msk_event import KafkaRecord
from notifications.observability import logger, metrics
from notifications.settings import SenderSettings

Decoded = ChannelMessage | PoisonRecordError  # a record's message, or why it can never be read
_NO_CALLER = "-"  # the share of v1 records, written before callers existed


@dataclass(frozen=True)
class Entry:
    """A record of a lane, its message (or why it has none), and whether it yields its turn."""

    record: KafkaRecord
    decoded: Decoded
    yields: bool


Lane = list[Entry]


class Lanes:
    """Splits a channel's batches into lanes, keeping each partition's fair share across batches."""

    def __init__(self, settings: SenderSettings) -> None:
        self._settings = settings
        self._shares: dict[str, FairShare] = {}

    def plan(self, decoded: Sequence[tuple[KafkaRecord, Decoded]]) -> list[Lane]:
        """The batch's lanes, in the order they are to start."""
        yielding = self._yielding(decoded)
        lanes: dict[tuple[str, bytes | None], Lane] = {}
        for record, message in decoded:
            entry = Entry(record, message, _position(record) in yielding)
            lanes.setdefault((record.partition_id, record.key), []).append(entry)
        yield_only = [lane for lane in lanes.values() if all(entry.yields for entry in lane)]
        sending = [lane for lane in lanes.values() if not all(entry.yields for entry in lane)]
        return [*yield_only, *_by_turns(sending)]

    def _yielding(self, decoded: Sequence[tuple[KafkaRecord, Decoded]]) -> set[tuple[str, int]]:
        """The records (partition and offset) that yield their turn to other callers' records in this batch."""
        horizon = self._settings.fair_share_horizon_seconds
        rate = self._settings.partition_rate
        if not horizon or rate is None:
            return set()
        waiting: dict[str, list[tuple[KafkaRecord, str]]] = {}
        for record, message in decoded:
            if isinstance(message, ChannelMessage) and message.channel == self._settings.channel:
                waiting.setdefault(record.partition_id, []).append((record, message.caller or _NO_CALLER))
        yielding: set[tuple[str, int]] = set()
        for partition_id, entries in waiting.items():
            share = self._shares.get(partition_id)
            if share is None:
                share = self._shares[partition_id] = FairShare(
                    rate,
                    horizon=horizon,
                    window=self._settings.fair_share_window_seconds,
                    weights=self._settings.caller_weights,
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


def _position(record: KafkaRecord) -> tuple[str, int]:
    return record.partition_id, record.offset


def _by_turns(lanes: list[Lane]) -> list[Lane]:
    """The lanes with their callers taking turns: the first lane of each caller, then the second, ..."""
    by_caller: dict[str, list[Lane]] = {}
    for lane in lanes:
        message = lane[0].decoded
        caller = message.caller or _NO_CALLER if isinstance(message, ChannelMessage) else _NO_CALLER
        by_caller.setdefault(caller, []).append(lane)
    queues = list(by_caller.values())
    return [queue[i] for i in range(max(map(len, queues), default=0)) for queue in queues if i < len(queue)]
