"""Delivery status per notification and channel (DynamoDB table keyed by notification_id, channel).

A notification lives in its caller's namespace: the partition key ``notification_id`` holds
``<caller id>/<notification id>`` (``NotificationKey``), so another caller's notification with the same id is
another item and reading it answers nothing. Notifications of v1 envelopes (no caller) are keyed by the bare id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from notifications import retention
from notifications.models import (
    Channel,
    ChannelStatus,
    DeliveryState,
    NotificationRef,
    NotificationStatus,
    notification_id_of,
)

if TYPE_CHECKING:
    from notifications.feedback import Applied

_MAX_ERROR = 500


class StatusStore(Protocol):
    """Port: where ingest, fanout and senders record what happened to each channel of a notification."""

    def record_accepted(
        self, notification: NotificationRef, channels: Sequence[Channel], *, customer_id: str | None = None
    ) -> None: ...

    def record_sent(self, notification: NotificationRef, channel: Channel, provider_message_id: str | None) -> None: ...

    def record_failure(self, notification: NotificationRef, channel: Channel, reason: str, *, final: bool) -> None: ...

    def get(self, notification: NotificationRef) -> NotificationStatus | None: ...


def _now() -> datetime:
    return datetime.now(UTC)


class DynamoStatusStore:
    """StatusStore on DynamoDB. Writes never move a channel backwards (a late 'accepted' cannot undo 'sent')."""

    def __init__(
        self,
        table_name: str,
        dynamodb: Any,
        clock: Callable[[], datetime] = _now,
        ttl_seconds: int = retention.STATUS_TTL_SECONDS,
    ) -> None:
        self._table = table_name
        self._ddb = dynamodb
        self._clock = clock
        self._ttl = ttl_seconds

    def _update(
        self,
        notification: NotificationRef,
        channel: Channel,
        expression: str,
        values: dict[str, Any],
        condition: str | None = None,
    ) -> None:
        # Every write moves the item's expiry on (notifications.retention): status is kept for a bounded time.
        now = self._clock()
        set_part, _, remove = expression.partition(" REMOVE ")
        expression = f"{set_part}, #expires = :expires" + (f" REMOVE {remove}" if remove else "")
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"notification_id": {"S": str(notification)}, "channel": {"S": channel.value}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": {"#state": "state", "#expires": retention.STATUS_EXPIRES_ATTRIBUTE},
            "ExpressionAttributeValues": {
                ":now": {"S": now.isoformat()},
                ":expires": {"N": str(retention.expires_at(now, self._ttl))},
                **values,
            },
        }
        if condition:
            kwargs["ConditionExpression"] = condition
        try:
            self._ddb.update_item(**kwargs)
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return

    def record_accepted(
        self, notification: NotificationRef, channels: Sequence[Channel], *, customer_id: str | None = None
    ) -> None:
        # The customer's id lets the erasure tool find the customer's items (ops/erase.py).
        customer = ", customer_id = :customer" if customer_id else ""
        values: dict[str, Any] = {":accepted": {"S": DeliveryState.ACCEPTED.value}, ":zero": {"N": "0"}}
        if customer_id:
            values[":customer"] = {"S": customer_id}
        for channel in channels:
            self._update(
                notification,
                channel,
                "SET #state = if_not_exists(#state, :accepted), attempts = if_not_exists(attempts, :zero), "
                "updated_at = if_not_exists(updated_at, :now)" + customer,
                values,
            )

    def record_sent(self, notification: NotificationRef, channel: Channel, provider_message_id: str | None) -> None:
        # The message id is written only when there is one: it keys the status table's provider_message_id
        # index, and DynamoDB refuses an empty string as an index key.
        pid = {":pid": {"S": provider_message_id}} if provider_message_id else {}
        self._update(
            notification,
            channel,
            "SET #state = :sent, "
            + ("provider_message_id = :pid, " if pid else "")
            + "updated_at = :now, attempts = if_not_exists(attempts, :zero) + :one REMOVE last_error",
            {
                ":sent": {"S": DeliveryState.SENT.value},
                **pid,
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
            },
            condition="attribute_not_exists(#state) OR #state <> :sent",
        )

    def record_failure(self, notification: NotificationRef, channel: Channel, reason: str, *, final: bool) -> None:
        expression = "SET last_error = :reason, updated_at = :now, attempts = if_not_exists(attempts, :zero) + :one"
        values: dict[str, Any] = {
            ":reason": {"S": reason[:_MAX_ERROR]},
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            ":sent": {"S": DeliveryState.SENT.value},
        }
        if final:
            expression += ", #state = :failed"
            values[":failed"] = {"S": DeliveryState.FAILED.value}
        self._update(
            notification, channel, expression, values, condition="attribute_not_exists(#state) OR #state <> :sent"
        )

    def record_dead_lettered(self, notification: NotificationRef, channel: Channel, reason: str) -> None:
        """Failed for good, the record being on the DLQ; unlike ``record_failure`` this is not a delivery attempt."""
        self._update(
            notification,
            channel,
            "SET #state = :failed, last_error = :reason, updated_at = :now, attempts = if_not_exists(attempts, :zero)",
            {
                ":failed": {"S": DeliveryState.FAILED.value},
                ":reason": {"S": reason[:_MAX_ERROR]},
                ":zero": {"N": "0"},
                ":sent": {"S": DeliveryState.SENT.value},
            },
            condition="attribute_not_exists(#state) OR #state <> :sent",
        )

    def get(self, notification: NotificationRef) -> NotificationStatus | None:
        response = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="notification_id = :id",
            ExpressionAttributeValues={":id": {"S": str(notification)}},
            ConsistentRead=True,
        )
        items = response.get("Items", [])
        if not items:
            return None
        channels = [_channel_status(item) for item in items]
        return NotificationStatus(id=notification_id_of(notification), channels=channels)

    # -- provider feedback (notifications.feedback) -----------------------------------------------------------

    def record_feedback(
        self,
        notification: NotificationRef,
        channel: Channel,
        *,
        provider_message_id: str,
        state: DeliveryState,
        at: datetime,
        reason: str | None,
        feedback_id: str,
    ) -> Applied:
        """Apply one provider event to the channel row that sent ``provider_message_id``.

        The state moves only forward (``_FEEDBACK_ORDER``: events arrive out of order); an event for a row already
        further on is still kept in its history. The row keeps the ids of the events applied (``feedback_ids``),
        so the same event twice changes nothing. A row that does not hold this message id is ``UNKNOWN``; a row
        whose send is not recorded yet raises ``NotYetSentError`` (the event overtook the sender: retried).
        One conditional write; a second read and write only when the condition fails.
        """
        from notifications.feedback import Applied, NotYetSentError  # noqa: PLC0415 - only the feedback function

        now = self._clock()
        key = {"notification_id": {"S": str(notification)}, "channel": {"S": channel.value}}
        entry: dict[str, Any] = {"event": {"S": state.value}, "at": {"S": at.isoformat()}}
        values: dict[str, Any] = {
            ":pid": {"S": provider_message_id},
            ":fid": {"S": feedback_id},
            ":fids": {"SS": [feedback_id]},
            ":events": {"L": [{"M": entry}]},
            ":empty": {"L": []},
            ":now": {"S": now.isoformat()},
            ":expires": {"N": str(retention.expires_at(now, self._ttl))},
        }
        sets = [
            "updated_at = :now",
            "#expires = :expires",
            "history = list_append(if_not_exists(history, :empty), :events)",
        ]
        if reason:
            entry["reason"] = {"S": reason[:_MAX_ERROR]}
            if state is not DeliveryState.DELIVERED:
                sets.append("last_error = :reason")
                values[":reason"] = {"S": reason[:_MAX_ERROR]}
        new_event = (
            "provider_message_id = :pid AND (attribute_not_exists(feedback_ids) OR NOT contains(feedback_ids, :fid))"
        )
        earlier = _FEEDBACK_ORDER[: _FEEDBACK_ORDER.index(state)]
        states = {f":before{i}": {"S": before.value} for i, before in enumerate(earlier)}

        def write(extra_sets: list[str], extra_values: dict[str, Any], condition: str) -> dict[str, Any] | None:
            try:
                self._ddb.update_item(
                    TableName=self._table,
                    Key=key,
                    UpdateExpression="SET " + ", ".join(sets + extra_sets) + " ADD feedback_ids :fids",
                    ConditionExpression=condition,
                    ExpressionAttributeNames={"#state": "state", "#expires": retention.STATUS_EXPIRES_ATTRIBUTE},
                    ExpressionAttributeValues={**values, **extra_values},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except self._ddb.exceptions.ConditionalCheckFailedException as exc:
                old: dict[str, Any] = getattr(exc, "response", {}).get("Item") or {}
                return old
            return None

        old = write(
            ["#state = :state"],
            {":state": {"S": state.value}, **states},
            f"{new_event} AND #state IN ({', '.join(states)})",
        )
        if old is None:
            return Applied.APPLIED
        if not old:  # a store that does not return the item with the failed condition: read it
            old = self._ddb.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item", {})
        if old.get("provider_message_id", {}).get("S") != provider_message_id:
            if (
                old
                and not old.get("provider_message_id", {}).get("S")
                and old.get("state", {}).get("S")
                in (
                    DeliveryState.ACCEPTED.value,
                    None,
                )
            ):
                raise NotYetSentError(f"{channel.value} of {notification} has no send recorded yet")
            return Applied.UNKNOWN
        if feedback_id in old.get("feedback_ids", {}).get("SS", []):
            return Applied.DUPLICATE
        # The state is already further on (or final): the event joins the history only.
        again = write([], {}, f"{new_event} AND attribute_exists(#state)")
        return Applied.RECORDED if again is None else Applied.DUPLICATE


def _channel_status(item: dict[str, Any]) -> ChannelStatus:
    def text(name: str) -> str | None:
        value = item.get(name, {}).get("S")
        return value or None

    updated = text("updated_at")
    return ChannelStatus(
        channel=Channel(item["channel"]["S"]),
        state=DeliveryState(item["state"]["S"]),
        attempts=int(item.get("attempts", {}).get("N", "0")),
        last_error=text("last_error"),
        provider_message_id=text("provider_message_id"),
        updated_at=datetime.fromisoformat(updated) if updated else None,
    )


# The order provider feedback moves a channel in (``record_feedback``): only ever to a later state.
_FEEDBACK_ORDER = (
    DeliveryState.SENT,
    DeliveryState.DELIVERED,
    DeliveryState.UNDELIVERABLE,
    DeliveryState.BOUNCED,
    DeliveryState.COMPLAINED,
)
