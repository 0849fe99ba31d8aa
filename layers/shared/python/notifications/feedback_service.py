"""Applying provider feedback (``notifications.feedback.Feedback``) to the status table and the suppression list.

What feedback does to a channel (``DeliveryState``): Delivery -> delivered; a permanent bounce -> bounced; a
complaint -> complained; a transient or undetermined bounce (SES publishes soft bounces only once it gave up), a
reject or a rendering failure -> undeliverable; an SMS log -> delivered or undeliverable. Permanent bounces and
complaints put the address on the suppression list, so the email sender never mails it again. The state only moves
forward (sent < delivered < undeliverable < bounced < complained: events arrive out of order), but every new event
is kept in the history. The same event twice (EventBridge delivers at least once; an archive can be replayed)
changes nothing: each event's ``feedback_id`` is stored with the row and checked. ``DynamoFeedbackStatus`` writes
all this to the channel's row with the status table's own UpdateItem (``notifications.status.StatusTable``).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from notifications.contracts.keys import NotificationRef
from notifications.contracts.status_view import DeliveryState, StatusEvent
from notifications.feedback import Feedback
from notifications.registry import Channel
from notifications.status import MAX_ERROR, StatusTable


class NotYetSentError(Exception):
    """The feedback names a channel whose send is not recorded yet (the event overtook ``record_sent``): retried."""


class Applied(Enum):
    """What one piece of feedback did."""

    APPLIED = "applied"  # state moved on (and the event is in the history)
    RECORDED = "recorded"  # a new event, kept in the history; the state was already further on
    DUPLICATE = "duplicate"  # this event was applied before: nothing changed
    UNKNOWN = "unknown"  # no channel of ours sent this message id


class FeedbackStatus(Protocol):
    """Port: the status table's feedback write (``DynamoFeedbackStatus``)."""

    def record_feedback(self, notification: NotificationRef, channel: Channel, feedback: Feedback) -> Applied: ...


class MessageIndex(Protocol):
    """Port: the notification and channel that sent a provider message id, or None."""

    def find(self, provider_message_id: str) -> tuple[NotificationRef, Channel] | None: ...


class SuppressionList(Protocol):
    """Port: addresses never to send to again."""

    def suppress(self, address: str, *, reason: str, at: datetime) -> None: ...

    def is_suppressed(self, address: str) -> bool: ...


class Counter(Protocol):
    def __call__(self, name: str) -> None: ...


class FeedbackService:
    """Applies feedback to the status table and the suppression list; counts what it did."""

    def __init__(
        self, status: FeedbackStatus, index: MessageIndex, suppressions: SuppressionList, count: Counter
    ) -> None:
        self._status = status
        self._index = index
        self._suppressions = suppressions
        self._count = count

    def apply(self, feedback: Feedback) -> Applied:
        # Suppression first: it holds whatever the status row says (even for a message we cannot place).
        for address in feedback.suppress:
            self._suppressions.suppress(address, reason=feedback.suppress_reason or "feedback", at=feedback.at)
        if feedback.suppress:
            self._count("AddressesSuppressed")
        target: tuple[NotificationRef, Channel] | None
        if feedback.notification is not None and feedback.channel is not None:
            target = (feedback.notification, feedback.channel)
        else:
            target = self._index.find(feedback.message_id)
        if target is None:
            applied = Applied.UNKNOWN
        else:
            notification, channel = target
            applied = self._status.record_feedback(notification, channel, feedback)
        self._count(_METRICS[applied])
        return applied


_METRICS = {
    Applied.APPLIED: "FeedbackApplied",
    Applied.RECORDED: "FeedbackApplied",
    Applied.DUPLICATE: "FeedbackDuplicate",
    Applied.UNKNOWN: "FeedbackUnknownMessage",
}


# The order provider feedback moves a channel in (``record_feedback``): only ever to a later state.
_FEEDBACK_ORDER = (
    DeliveryState.SENT,
    DeliveryState.DELIVERED,
    DeliveryState.UNDELIVERABLE,
    DeliveryState.BOUNCED,
    DeliveryState.COMPLAINED,
)


class DynamoFeedbackStatus:
    """FeedbackStatus on the status table (``notifications.status``), through its one UpdateItem."""

    def __init__(self, table: StatusTable) -> None:
        self._table = table

    def record_feedback(self, notification: NotificationRef, channel: Channel, feedback: Feedback) -> Applied:
        """Apply one provider event to the channel row that sent its message id.

        The state moves only forward (``_FEEDBACK_ORDER``: events arrive out of order); an event for a row already
        further on is still kept in its history. The row keeps the ids of the events applied (``feedback_ids``),
        so the same event twice changes nothing. A row that does not hold this message id is ``UNKNOWN``; a row
        whose send is not recorded yet raises ``NotYetSentError`` (the event overtook the sender: retried).
        One conditional write, which returns the row when its condition fails; a second write only then.
        """
        state, message_id, feedback_id = feedback.state, feedback.message_id, feedback.feedback_id
        sets: list[str] = []
        values: dict[str, Any] = {":pid": {"S": message_id}, ":fid": {"S": feedback_id}, ":fids": {"SS": [feedback_id]}}
        if feedback.reason and state is not DeliveryState.DELIVERED:
            sets.append("last_error = :reason")
            values[":reason"] = {"S": feedback.reason[:MAX_ERROR]}
        new_event = (
            "provider_message_id = :pid AND (attribute_not_exists(feedback_ids) OR NOT contains(feedback_ids, :fid))"
        )
        earlier = _FEEDBACK_ORDER[: _FEEDBACK_ORDER.index(state)]
        states = {f":before{i}": {"S": before.value} for i, before in enumerate(earlier)}
        event = StatusEvent(event=state.value, at=feedback.at, reason=feedback.reason)

        def write(extra_sets: list[str], extra_values: dict[str, Any], condition: str) -> dict[str, Any] | None:
            return self._table.update(
                notification,
                channel,
                [*sets, *extra_sets],
                {**values, **extra_values},
                event=event,
                add=("feedback_ids :fids",),
                condition=condition,
                old_on_failure=True,
            )

        old = write(
            ["#state = :state"],
            {":state": {"S": state.value}, **states},
            f"{new_event} AND #state IN ({', '.join(states)})",
        )
        if old is None:
            return Applied.APPLIED
        if old.get("provider_message_id", {}).get("S") != message_id:
            unsent = old.get("state", {}).get("S") in (DeliveryState.ACCEPTED.value, None)
            if old and not old.get("provider_message_id", {}).get("S") and unsent:
                raise NotYetSentError(f"{channel.value} of {notification} has no send recorded yet")
            return Applied.UNKNOWN
        if feedback_id in old.get("feedback_ids", {}).get("SS", []):
            return Applied.DUPLICATE
        # The state is already further on (or final): the event joins the history only.
        again = write([], {}, f"{new_event} AND attribute_exists(#state)")
        return Applied.RECORDED if again is None else Applied.DUPLICATE
