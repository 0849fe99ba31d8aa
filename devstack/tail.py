"""Follow deliveries and dead letters of the running local stack, one line each.

    python -m devstack tail [--from-beginning]

Deliveries come from the functions' own logs (``<data_dir>/logs/*.log``, JSON lines as CloudWatch would hold
them): a sender writes ``"delivered"`` only after the provider accepted the message, so a line here is a send
that happened, not one that is merely queued (the channel topics only say that), and it is what ``sam logs
--tail`` would show in AWS. Dead letters come from the ``notifications.dlq`` topic itself, because both the
senders and fanout (poison records, permanent provider errors; the original record with ``dlq-*`` headers) and the
event-source mappings' on-failure destination (exhausted retries, records too old; AWS's JSON on-failure record
with the original inside) write there. Both are read by ``notifications.dead_letters``: one line per original
record, saying where it came from, which stage gave it up and why.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from notifications.dead_letters import DeadLetter, read_dead_letters
from notifications.kafka.msk_event import KafkaRecord

DLQ_TOPIC = "notifications.dlq"


def delivery_line(entry: dict[str, Any]) -> str | None:
    """The line for one function log entry, or None when it is not a delivery."""
    if entry.get("message") != "delivered":
        return None
    when = str(entry.get("timestamp", ""))[11:23].replace(",", ".")
    return (
        f"{when}  delivered  {entry.get('channel', '?'):<8} {entry.get('notification_id', '?')}"
        f"  order {entry.get('order_id', '?')}  provider id {entry.get('provider_message_id') or '-'}"
    )


def _dead_letter_line(letter: DeadLetter) -> str:
    original, value = letter.original, letter.fields()
    when = datetime.fromtimestamp(letter.dlq.timestamp / 1000, UTC).strftime("%H:%M:%S.%f")[:12]
    notification = value.get("notification_id") or (letter.key or b"?").decode("utf-8", "replace")
    channel = value.get("channel") or (original.topic.removeprefix("notifications.") if original else "?")
    source = f"{original.topic}-{original.partition}@{original.offset}" if original else "?"
    return f"{when}  dead       {channel:<8} {notification}  from {source} by {letter.stage}: {letter.reason}"


def dead_letter_lines(record: KafkaRecord) -> list[str]:
    """The lines for one record of the DLQ topic: one per original record it holds."""
    return [_dead_letter_line(letter) for letter in read_dead_letters(record)]


@dataclass
class _LogFile:
    path: Path
    position: int
    partial: bytes = b""

    def new_lines(self) -> list[bytes]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.position)
                data = handle.read()
        except OSError:
            return []
        if not data:
            return []
        self.position += len(data)
        data, self.partial = self.partial + data, b""
        lines = data.split(b"\n")
        self.partial = lines.pop()
        return lines


class LogFollower:
    """New delivery lines of every ``*.log`` in a directory (files appearing later included)."""

    def __init__(self, logs_dir: Path, *, from_beginning: bool = False) -> None:
        self._dir = logs_dir
        self._files: dict[Path, _LogFile] = {}
        self._from_beginning = from_beginning
        self._scan(initial=True)

    def _scan(self, *, initial: bool = False) -> None:
        for path in sorted(self._dir.glob("*.log")):
            if path not in self._files:
                start = 0 if self._from_beginning or not initial else path.stat().st_size
                self._files[path] = _LogFile(path, start)

    def lines(self) -> list[tuple[str, str]]:
        """(timestamp, line) of the deliveries logged since the last call."""
        self._scan()
        found: list[tuple[str, str]] = []
        for log in self._files.values():
            for raw in log.new_lines():
                if not raw.startswith(b"{"):
                    continue
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                line = delivery_line(entry) if isinstance(entry, dict) else None
                if line:
                    found.append((str(entry.get("timestamp", "")), line))
        return sorted(found)


def follow(
    bootstrap: str,
    logs_dir: Path,
    *,
    from_beginning: bool = False,
    out: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> None:
    """Print deliveries and dead letters as they happen, until ``stop`` is set (or forever)."""
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

    stop = stop or threading.Event()
    logs = LogFollower(logs_dir, from_beginning=from_beginning)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(DLQ_TOPIC, p) for p in sorted(consumer.partitions_for_topic(DLQ_TOPIC) or ())]
        consumer.assign(partitions)
        if from_beginning:
            consumer.seek_to_beginning(*partitions)
        else:
            consumer.seek_to_end(*partitions)
        out(f"tail: deliveries from {logs_dir}/*.log, dead letters from {DLQ_TOPIC} on {bootstrap} (Ctrl-C stops)")
        while not stop.is_set():
            for _, line in logs.lines():
                out(line)
            for batch in consumer.poll(timeout_ms=300).values():
                for record in batch:
                    for line in dead_letter_lines(KafkaRecord.from_consumer(record)):
                        out(line)
    finally:
        consumer.close()
