"""The status view: where each channel of a notification stands and how it got there, as the status store keeps it
and ``GET /v1/notifications/{id}`` answers it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, Field

from notifications.registry import Channel


class DeliveryState(StrEnum):
    """Where a channel of a notification stands. ``sent``: the provider took it; the provider's feedback (email, SMS)
    then moves it on to ``delivered``, ``bounced``, ``complained`` or ``undeliverable``."""

    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNDELIVERABLE = "undeliverable"
    FAILED = "failed"


# The provider took the message: nothing may send it again, whatever feedback follows.
HANDED_OVER = frozenset(
    {
        DeliveryState.SENT,
        DeliveryState.DELIVERED,
        DeliveryState.BOUNCED,
        DeliveryState.COMPLAINED,
        DeliveryState.UNDELIVERABLE,
    }
)


class StatusEvent(BaseModel):
    """One step of a channel's history, oldest first: ``accepted``, ``attempt_failed`` (a transient failure, retried),
    ``sent``, the provider's feedback (``delivered``, ``bounced``, ``complained``, ``undeliverable``) or ``failed``
    (for good)."""

    event: str
    at: datetime
    reason: str | None = None


class ChannelStatus(BaseModel):
    channel: Channel
    state: DeliveryState
    attempts: int = 0
    last_error: str | None = None
    provider_message_id: str | None = None
    updated_at: datetime | None = None
    history: list[StatusEvent] = Field(default_factory=list)
    history_dropped: int = Field(
        0,
        description="Events recorded between the first and the last 20 that the history no longer holds (a long "
        "outage adds one per retry); 0 when it holds them all.",
    )


class NotificationStatus(BaseModel):
    id: UUID
    channels: list[ChannelStatus]
