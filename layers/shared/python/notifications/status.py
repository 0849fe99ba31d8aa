"""Delivery status per notification and channel (DynamoDB table keyed by notification_id, channel).

A notification lives in its caller's namespace: the partition key ``notification_id`` holds
``<caller id>/<notification id>`` (``NotificationKey``), so another caller's notification with the same id is
another item and reading it answers nothing. Notifications of v1 envelopes (no caller) are keyed by the bare id.

Items of one notification:

- ``#notification`` (``NOTIFICATION_ITEM``): written by ingest (``notifications.ledger``): the request's
  idempotency state, the channels and the 202 answer. It is what GET reads first.
- one item per channel, written by its sender: the channel's state, attempts, last error, the provider's message
  id, a lease while a send is in flight and the history of events. The row is also the send's idempotency record:
  a send is claimed on it (``claim_send``) and its outcome written to it (``record_sent``, ``record_failure``,
  ``release``), two writes per delivery. Every write that makes a row sets its state: a channel without its row
  yet, or with a row without a state, is ``accepted``.

One adapter per port, all on ``StatusTable`` (the table's key layout, the items' expiry and the one UpdateItem
that writes a channel row):

- ``DynamoSendClaims`` (``SendClaims``): a sender's claim and the outcome of its send;
- ``DynamoStatusView`` (``StatusView``): GET's read of a notification's items (``read_status``);
- ``DynamoDeadLetterStatus`` (``notifications.dlq.DeadLetterStatus``): a channel failed for good on the DLQ;
- ``notifications.feedback_service.DynamoFeedbackStatus``: provider feedback moving a channel on from ``sent``;
- ``notifications.ledger.DynamoLedger``: ingest's claim and answer on the ``#notification`` item.

The history is bounded, as an item is (400 KB: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
ServiceQuotas.html) and an outage of hours adds an event per retry: a row keeps its first event
(``history_first``), its last ``HISTORY_KEPT`` in as many slots (``history_01``, the newest, to ``history_20``)
and the number of events ever recorded (``history_count``), from which GET tells how many it dropped. Recording an
event shifts every slot by one in the write that records it: each action of an update expression reads the item
as it was before the update (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
Expressions.UpdateExpressions.html), so the slots move in one UpdateItem, no read, and the row's size stays fixed.
A capped list cannot do this in one write: appending to ``history`` and removing its element 1 are two actions on
overlapping paths, which DynamoDB refuses. Rows written before the cap keep their ``history`` list, read first.

Every write moves the item's expiry on (``notifications.retention``): status is kept for a bounded time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from itertools import pairwise
from typing import Any, Protocol

from notifications import retention
from notifications.contracts.api import Accepted
from notifications.contracts.keys import NotificationRef, notification_id_of
from notifications.contracts.status_view import (
    HANDED_OVER,
    ChannelStatus,
    DeliveryState,
    NotificationStatus,
    StatusEvent,
)
from notifications.registry import Channel

MAX_ERROR = 500  # the longest reason a row keeps
HISTORY_KEPT = 20  # a row keeps its first event and the last 20 (each under 1 KB with its reason)
_SLOTS = tuple(f"history_{n:02d}" for n in range(1, HISTORY_KEPT + 1))  # newest first
NOTIFICATION_ITEM = "#notification"  # sort key of the notification's own item; channel rows are channel names

# The condition of every write a send makes: the provider does not have the message yet.
_HANDED_OVER_VALUES = {f":h{i}": {"S": state.value} for i, state in enumerate(sorted(HANDED_OVER))}
_NOT_HANDED_OVER = f"attribute_not_exists(#state) OR NOT #state IN ({', '.join(_HANDED_OVER_VALUES)})"


class Claim(Enum):
    """What ``claim_send`` found: the send is this caller's to make, was made already, or is being made."""

    CLAIMED = "claimed"
    ALREADY_SENT = "already_sent"
    IN_FLIGHT = "in_flight"


@dataclass(frozen=True)
class SendClaim:
    outcome: Claim
    provider_message_id: str | None = None


class SendClaims(Protocol):
    """Port: a sender's claim on the send of a channel, and what came of it."""

    def claim_send(self, notification: NotificationRef, channel: Channel, lease_seconds: float) -> SendClaim: ...

    def record_sent(self, notification: NotificationRef, channel: Channel, provider_message_id: str | None) -> None: ...

    def record_failure(self, notification: NotificationRef, channel: Channel, reason: str, *, final: bool) -> None: ...

    def release(self, notification: NotificationRef, channel: Channel) -> None: ...


class StatusView(Protocol):
    """Port: what GET reads about each channel of a notification."""

    def get(self, notification: NotificationRef) -> NotificationStatus | None: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _record_event(event: StatusEvent) -> tuple[list[str], dict[str, Any]]:
    """The SET actions and values that record ``event`` in a row's bounded history (see the module docstring).
    The slots are shifted oldest first, so an emulator applying actions one after another agrees with DynamoDB."""
    entry: dict[str, Any] = {"event": {"S": event.event}, "at": {"S": event.at.isoformat()}}
    if event.reason:
        entry["reason"] = {"S": event.reason[:MAX_ERROR]}
    shift = [f"{older} = if_not_exists({newer}, :no_event)" for newer, older in reversed(list(pairwise(_SLOTS)))]
    return [
        *shift,
        f"{_SLOTS[0]} = :event",
        "history_first = if_not_exists(history_first, :event)",
        "history_count = if_not_exists(history_count, :no_events) + :one_event",
    ], {":event": {"M": entry}, ":no_event": {"NULL": True}, ":no_events": {"N": "0"}, ":one_event": {"N": "1"}}


@dataclass(frozen=True)
class StatusTable:
    """The status table as its adapters share it: name, client, clock and how long items are kept."""

    name: str
    dynamodb: Any
    clock: Callable[[], datetime] = _now
    ttl_seconds: int = retention.STATUS_TTL_SECONDS

    @staticmethod
    def key(notification: NotificationRef, sort_key: str) -> dict[str, Any]:
        """An item's key: the notification (in its caller's namespace) and the channel, or ``NOTIFICATION_ITEM``."""
        return {"notification_id": {"S": str(notification)}, "channel": {"S": sort_key}}

    def expires(self, now: datetime) -> dict[str, Any]:
        """The expiry attribute's value for an item written at ``now``."""
        return {"N": str(retention.expires_at(now, self.ttl_seconds))}

    def update(
        self,
        notification: NotificationRef,
        channel: Channel,
        sets: list[str],
        values: dict[str, Any],
        *,
        event: StatusEvent | None = None,
        remove: tuple[str, ...] = (),
        add: tuple[str, ...] = (),
        condition: str | None = None,
        old_on_failure: bool = False,
    ) -> dict[str, Any] | None:
        """One UpdateItem on a channel row; the old item (if asked for) when the condition failed, else None. A failed
        condition on a row that does not exist returns no item: ``{}``
        (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html,
        ReturnValuesOnConditionCheckFailure)."""
        now = self.clock()
        sets = [*sets, "updated_at = :now", "#expires = :expires"]
        values = {**values, ":now": {"S": now.isoformat()}, ":expires": self.expires(now)}
        if event is not None:
            history_sets, history_values = _record_event(event)
            sets, values = [*sets, *history_sets], {**values, **history_values}
        expression = "SET " + ", ".join(sets)
        expression += (" REMOVE " + ", ".join(remove) if remove else "") + (" ADD " + ", ".join(add) if add else "")
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "Key": self.key(notification, channel.value),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": {"#expires": retention.STATUS_EXPIRES_ATTRIBUTE},
            "ExpressionAttributeValues": values,
        }
        if "#state" in expression + (condition or ""):
            kwargs["ExpressionAttributeNames"]["#state"] = "state"
        if condition:
            kwargs["ConditionExpression"] = condition
            if old_on_failure:
                kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            self.dynamodb.update_item(**kwargs)
        except self.dynamodb.exceptions.ConditionalCheckFailedException as exc:
            return dict(getattr(exc, "response", {}).get("Item") or {})
        return None

    def query(self, notification: NotificationRef) -> list[dict[str, Any]]:
        """Every item of a notification, read consistently."""
        response = self.dynamodb.query(
            TableName=self.name,
            KeyConditionExpression="notification_id = :id",
            ExpressionAttributeValues={":id": {"S": str(notification)}},
            ConsistentRead=True,
        )
        items: list[dict[str, Any]] = response.get("Items", [])
        return items


def _record_failure(
    table: StatusTable, notification: NotificationRef, channel: Channel, reason: str, final: bool
) -> None:
    """A failed attempt (``final``: the channel failed for good); ends the attempt's lease. The row may not exist
    yet (the attempt's claim failed): it is then made with its state, ``accepted``. Not an attempt of its own."""
    sets = ["last_error = :reason", "attempts = if_not_exists(attempts, :zero)"]
    values: dict[str, Any] = {":reason": {"S": reason[:MAX_ERROR]}, ":zero": {"N": "0"}, **_HANDED_OVER_VALUES}
    if final:
        sets.append("#state = :failed")
        values[":failed"] = {"S": DeliveryState.FAILED.value}
    else:
        sets.append("#state = if_not_exists(#state, :accepted)")
        values[":accepted"] = {"S": DeliveryState.ACCEPTED.value}
    table.update(
        notification,
        channel,
        sets,
        values,
        event=StatusEvent(event="failed" if final else "attempt_failed", at=table.clock(), reason=reason),
        remove=("lease_until",),
        condition=_NOT_HANDED_OVER,
    )


class DynamoSendClaims:
    """SendClaims on the status table. Writes never move a channel backwards: nothing follows a send but feedback."""

    def __init__(self, table: StatusTable) -> None:
        self._table = table

    def claim_send(self, notification: NotificationRef, channel: Channel, lease_seconds: float) -> SendClaim:
        """Take the send of this channel for ``lease_seconds``: unless the provider has it already, or another
        attempt holds an unexpired lease. One write; a lease left by a crashed attempt lapses by itself."""
        now = self._table.clock()
        old = self._table.update(
            notification,
            channel,
            [
                "#state = if_not_exists(#state, :accepted)",
                "attempts = if_not_exists(attempts, :zero) + :one",
                "lease_until = :until",
            ],
            {
                ":accepted": {"S": DeliveryState.ACCEPTED.value},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                ":until": {"N": f"{now.timestamp() + lease_seconds:.3f}"},
                ":epoch": {"N": f"{now.timestamp():.3f}"},
                **_HANDED_OVER_VALUES,
            },
            condition=f"({_NOT_HANDED_OVER}) AND (attribute_not_exists(lease_until) OR lease_until < :epoch)",
            old_on_failure=True,
        )
        if old is None:
            return SendClaim(Claim.CLAIMED)
        if old.get("state", {}).get("S") in {state.value for state in HANDED_OVER}:
            return SendClaim(Claim.ALREADY_SENT, old.get("provider_message_id", {}).get("S") or None)
        return SendClaim(Claim.IN_FLIGHT)

    def record_sent(self, notification: NotificationRef, channel: Channel, provider_message_id: str | None) -> None:
        # The message id is written only when there is one: it keys the status table's provider_message_id
        # index (provider feedback finds the row of an SMS by it), and DynamoDB refuses an empty index key.
        pid = {":pid": {"S": provider_message_id}} if provider_message_id else {}
        self._table.update(
            notification,
            channel,
            ["#state = :sent", *(["provider_message_id = :pid"] if pid else [])],
            {":sent": {"S": DeliveryState.SENT.value}, **pid, **_HANDED_OVER_VALUES},
            event=StatusEvent(event="sent", at=self._table.clock()),
            remove=("lease_until", "last_error"),
            condition=_NOT_HANDED_OVER,
        )

    def record_failure(self, notification: NotificationRef, channel: Channel, reason: str, *, final: bool) -> None:
        _record_failure(self._table, notification, channel, reason, final)

    def release(self, notification: NotificationRef, channel: Channel) -> None:
        """End a claimed attempt that never reached the provider (deferred before its turn): no event, no failure."""
        self._table.update(
            notification,
            channel,
            ["attempts = attempts - :one"],
            {":one": {"N": "1"}},
            remove=("lease_until",),
            condition="attribute_exists(lease_until)",
        )


class DynamoDeadLetterStatus:
    """DeadLetterStatus (``notifications.dlq``) on the status table."""

    def __init__(self, table: StatusTable) -> None:
        self._table = table

    def record_dead_lettered(self, notification: NotificationRef, channel: Channel, reason: str) -> None:
        """Failed for good, the record being on the DLQ: the write of a final failure, a channel already sent
        staying sent."""
        _record_failure(self._table, notification, channel, reason, final=True)


class DynamoStatusView:
    """StatusView on the status table: one consistent Query of a notification's items."""

    def __init__(self, table: StatusTable) -> None:
        self._table = table

    def get(self, notification: NotificationRef) -> NotificationStatus | None:
        return read_status(notification, self._table.query(notification))


def read_status(notification: NotificationRef, items: list[dict[str, Any]]) -> NotificationStatus | None:
    """The status view of a notification's items: None until ingest accepted it (or, for notifications accepted
    before the notification item existed, until a channel row was written)."""
    rows = {item["channel"]["S"]: item for item in items}
    head = rows.pop(NOTIFICATION_ITEM, None)
    accepted: Accepted | None = None
    # A head without its answer is a claim still in flight (or one whose completion failed): no channels from it.
    if head is not None and "response" in head:
        accepted = Accepted.model_validate(json.loads(head["response"]["S"]))
    channels = [] if accepted is None else list(accepted.channels)
    channels += [Channel(name) for name in rows if not name.startswith("#") and Channel(name) not in channels]
    if not channels:
        return None
    return NotificationStatus(
        id=notification_id_of(notification),
        channels=[_channel_status(channel, rows.get(channel.value), accepted) for channel in channels],
    )


def _channel_status(channel: Channel, item: dict[str, Any] | None, accepted: Accepted | None) -> ChannelStatus:
    history = [StatusEvent(event="accepted", at=accepted.accepted_at)] if accepted else []
    if item is None:
        return ChannelStatus(
            channel=channel, state=DeliveryState.ACCEPTED, updated_at=accepted and accepted.accepted_at, history=history
        )

    def text(name: str) -> str | None:
        value = item.get(name, {}).get("S")
        return value or None

    events, dropped = _history(item)
    updated = text("updated_at")
    return ChannelStatus(
        channel=channel,
        state=DeliveryState(text("state") or DeliveryState.ACCEPTED),
        attempts=int(item.get("attempts", {}).get("N", "0")),
        last_error=text("last_error"),
        provider_message_id=text("provider_message_id"),
        updated_at=datetime.fromisoformat(updated) if updated else None,
        history=[*history, *events],
        history_dropped=dropped,
    )


def _history(item: dict[str, Any]) -> tuple[list[StatusEvent], int]:
    """A row's events, oldest first, and how many it dropped between its first and its last ``HISTORY_KEPT``."""
    recent = [item[slot] for slot in reversed(_SLOTS) if "M" in item.get(slot, {})]
    count = int(item.get("history_count", {}).get("N", "0"))
    kept = recent if count <= len(recent) else [item["history_first"], *recent]
    events = [entry["M"] for entry in [*item.get("history", {}).get("L", []), *kept]]  # "history": before the cap
    return [
        StatusEvent(event=e["event"]["S"], at=datetime.fromisoformat(e["at"]["S"]), reason=e.get("reason", {}).get("S"))
        for e in events
    ], max(0, count - len(kept))
