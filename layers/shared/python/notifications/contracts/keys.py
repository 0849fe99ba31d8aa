"""How a notification is keyed where it is kept: its status items, idempotency records and message index."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True)
class NotificationKey:
    """A notification in its caller's namespace: what its status items and idempotency records are keyed by.

    Another caller's notification with the same id is another key. A v1 envelope (no caller) is keyed by its
    bare id instead."""

    caller: str
    id: UUID

    def __str__(self) -> str:
        return f"{self.caller}/{self.id}"


# A notification as its status is keyed: in its caller's namespace, or by its bare id (v1 envelopes, no caller).
NotificationRef = NotificationKey | UUID


def notification_id_of(ref: NotificationRef) -> UUID:
    return ref.id if isinstance(ref, NotificationKey) else ref
