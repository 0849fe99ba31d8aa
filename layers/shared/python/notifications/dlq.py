"""Dead-letter domain: whatever lands on ``notifications.dlq`` marks its notification failed and is counted once.

Every path into the DLQ passes here: fanout and sender dead letters (poison records, permanent provider errors)
and the Kafka triggers' on-failure records (retries exhausted, records too old), read alike through
:mod:`notifications.dead_letters`. For each original record:

- a channel message (``notification.channel/v1`` or v2) marks its channel ``failed`` with the reason; a requested
  envelope (``notification.requested/v1`` or v2) marks every channel it asked for, in the caller's namespace.
  So ``GET /v1/notifications/{id}`` never stays pending for a notification the pipeline gave up on. A channel
  already ``sent`` stays sent.
- one ``DeadLetters`` metric is emitted, so the DLQ alarm counts every path with one metric.

Values are read leniently (unknown fields ignored): a dead letter is often a record the strict contract refused,
and whatever identifies the notification is still worth recording. A record naming no notification of a known
schema is only logged and counted. A failed status write raises, so the record is retried.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from notifications.contracts.envelopes import CHANNEL_SCHEMAS, REQUESTED_SCHEMAS
from notifications.contracts.keys import NotificationKey, NotificationRef, notification_id_of
from notifications.dead_letters import DeadLetter, read_dead_letters
from notifications.kafka.msk_event import KafkaRecord
from notifications.observability import correlation_id_from_headers, logger, metrics
from notifications.registry import Channel


class DeadLetterStatus(Protocol):
    """Port: the status table, as far as dead letters change it."""

    def record_dead_lettered(self, notification: NotificationRef, channel: Channel, reason: str) -> None: ...


class _Envelope(BaseModel):
    """What identifies a notification in either envelope; everything else is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    schema_: str = Field(alias="schema")
    caller: str | None = None
    notification_id: UUID
    channel: Channel | None = None
    channels: list[Channel] = Field(default_factory=list)


def affected(record: KafkaRecord) -> tuple[NotificationRef, list[Channel]] | None:
    """The notification (in its caller's namespace) and channels a dead-lettered record was about, or None if it
    names none."""
    try:
        envelope = _Envelope.model_validate(json.loads(record.value or b""))
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    ref = NotificationKey(envelope.caller, envelope.notification_id) if envelope.caller else envelope.notification_id
    if envelope.schema_ in CHANNEL_SCHEMAS and envelope.channel is not None:
        return ref, [envelope.channel]
    if envelope.schema_ in REQUESTED_SCHEMAS and envelope.channels:
        return ref, list(dict.fromkeys(envelope.channels))
    return None


@dataclass
class DeadLetterService:
    status: DeadLetterStatus

    def handle(self, record: KafkaRecord) -> list[DeadLetter]:
        """Mark and count every original record one DLQ record holds; answers them."""
        letters = read_dead_letters(record)
        for letter in letters:
            self._mark(letter)
            metrics.add_metric(name="DeadLetters", unit="Count", value=1)
        return letters

    def _mark(self, letter: DeadLetter) -> None:
        original = letter.original
        logger.set_correlation_id(correlation_id_from_headers(original.headers) if original else None)
        found = affected(original) if original is not None else None
        logger.warning(
            "dead letter",
            dlq_position=letter.position,
            kind=letter.kind,
            source=letter.source,
            stage=letter.stage,
            reason=letter.reason,
            notification_id=str(notification_id_of(found[0])) if found else None,
            caller=found[0].caller if found and isinstance(found[0], NotificationKey) else None,
            channels=[c.value for c in found[1]] if found else [],
        )
        if found is None:
            return
        notification, channels = found
        for channel in channels:
            self.status.record_dead_lettered(notification, channel, letter.reason)
