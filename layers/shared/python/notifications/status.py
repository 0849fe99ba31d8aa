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
from typing import TYPE_CHECKING, Any, Protocol

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

if TYPE_CHECKING:
    from notifications.feedback import Applied

_MAX_ERROR = 500
HISTORY_KEPT = 20  # a row keeps its first event and the last 20 (each under 1 KB with its reason)
_SLOTS = tuple(f"history_{n:02d}" for n in range(1, HISTORY_KEPT + 1))  # newest first
NOTIFICATION_ITEM = "#notification"  # sort key of the notification's own item; channel rows are channel names


class Claim(Enum):
    """What ``claim_send`` found: the send is this caller's to make, was made already, or is being made."""

    CLAIMED = "claimed"
    ALREADY_SENT = "already_sent"
    IN_FLIGHT = "in_flight"


@dataclass(frozen=True)
class SendClaim:
    outcome: Claim
    provider_message_id: str | None = None


class StatusStore(Protocol):
    """Port: what senders record about each channel of a notification, and what GET reads."""

    def claim_send(self, notification: NotificationRef, channel: Channel, lease_seconds: float) -> SendClaim: ...

    def record_sent(self, notification: NotificationRef, channel: Channel, provider_message_id: str | None) -> None: ...

    def record_failure(self, notification: NotificationRef, channel: Channel, reason: str, *, final: bool) -> None: ...

    def release(self, notification: NotificationRef, channel: Channel) -> None: ...

    def get(self, notification: NotificationRef) -> NotificationStatus | None: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _event(event: str, at: datetime, reason: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"event": {"S": event}, "at": {"S": at.isoformat()}}
    if reason:
        entry["reason"] = {"S": reason[:_MAX_ERROR]}
    return {"M": entry}


def _record_event(event: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The SET actions and values that record ``event`` in a row's bounded history (see the module docstring).
    The slots are shifted oldest first, so an emulator applying actions one after another agrees with DynamoDB."""
    shift = [f"{older} = if_not_exists({newer}, :no_event)" for newer, older in reversed(list(pairwise(_SLOTS)))]
    return [
        *shift,
        f"{_SLOTS[0]} = :event",
        "history_first = if_not_exists(history_first, :event)",
        "history_count = if_not_exists(history_count, :no_events) + :one_event",
    ], {":event": event, ":no_event": {"NULL": True}, ":no_events": {"N": "0"}, ":one_event": {"N": "1"}}


def _states(states: frozenset[DeliveryState]) -> tuple[str, dict[str, Any]]:
    """A condition's ``IN (...)`` list of states and its expression values."""
    names = {f":h{i}": {"S": state.value} for i, state in enumerate(sorted(states))}
    return ", ".join(names), names


class DynamoStatusStore:
    """StatusStore on DynamoDB. Writes never move a channel backwards: nothing follows a send but feedback."""

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
        sets: list[str],
        values: dict[str, Any],
        *,
        event: dict[str, Any] | None = None,
        remove: tuple[str, ...] = (),
        condition: str | None = None,
        old_on_failure: bool = False,
    ) -> dict[str, Any] | None:
        """One UpdateItem on a channel row; the old item (if asked for) when the condition failed, else None. A failed
        condition on a row that does not exist returns no item: ``{}``."""
        now = self._clock()
        sets = [*sets, "updated_at = :now", "#expires = :expires"]
        values = {
            **values,
            ":now": {"S": now.isoformat()},
            ":expires": {"N": str(retention.expires_at(now, self._ttl))},
        }
        if event is not None:
            history_sets, history_values = _record_event(event)
            sets, values = [*sets, *history_sets], {**values, **history_values}
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(remove) if remove else "")
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"notification_id": {"S": str(notification)}, "channel": {"S": channel.value}},
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
            self._ddb.update_item(**kwargs)
        except self._ddb.exceptions.ConditionalCheckFailedException as exc:
            return dict(getattr(exc, "response", {}).get("Item") or {})
        return None

    # -- a send ----------------------------------------------------------------------------------------------

    def claim_send(self, notification: NotificationRef, channel: Channel, lease_seconds: float) -> SendClaim:
        """Take the send of this channel for ``lease_seconds``: unless the provider has it already, or another
        attempt holds an unexpired lease. One write; a lease left by a crashed attempt lapses by itself."""
        now = self._clock()
        handed, handed_values = _states(HANDED_OVER)
        old = self._update(
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
                **handed_values,
            },
            condition=f"(attribute_not_exists(#state) OR NOT #state IN ({handed})) "
            "AND (attribute_not_exists(lease_until) OR lease_until < :epoch)",
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
        handed, handed_values = _states(HANDED_OVER)
        pid = {":pid": {"S": provider_message_id}} if provider_message_id else {}
        self._update(
            notification,
            channel,
            ["#state = :sent", *(["provider_message_id = :pid"] if pid else [])],
            {":sent": {"S": DeliveryState.SENT.value}, **pid, **handed_values},
            event=_event("sent", self._clock()),
            remove=("lease_until", "last_error"),
            condition=f"attribute_not_exists(#state) OR NOT #state IN ({handed})",
        )

    def record_failure(self, notification: NotificationRef, channel: Channel, reason: str, *, final: bool) -> None:
        """A failed attempt (``final``: the channel failed for good); ends the attempt's lease. The row may not exist
        yet (the attempt's claim failed): it is then made with its state, ``accepted``."""
        sets = ["last_error = :reason", "attempts = if_not_exists(attempts, :zero)"]
        values: dict[str, Any] = {":reason": {"S": reason[:_MAX_ERROR]}, ":zero": {"N": "0"}}
        if final:
            sets.append("#state = :failed")
            values[":failed"] = {"S": DeliveryState.FAILED.value}
        else:
            sets.append("#state = if_not_exists(#state, :accepted)")
            values[":accepted"] = {"S": DeliveryState.ACCEPTED.value}
        handed, handed_values = _states(HANDED_OVER)
        self._update(
            notification,
            channel,
            sets,
            {**values, **handed_values},
            event=_event("failed" if final else "attempt_failed", self._clock(), reason),
            remove=("lease_until",),
            condition=f"attribute_not_exists(#state) OR NOT #state IN ({handed})",
        )

    def release(self, notification: NotificationRef, channel: Channel) -> None:
        """End a claimed attempt that never reached the provider (deferred before its turn): no event, no failure."""
        self._update(
            notification,
            channel,
            ["attempts = attempts - :one"],
            {":one": {"N": "1"}},
            remove=("lease_until",),
            condition="attribute_exists(lease_until)",
        )

    def record_dead_lettered(self, notification: NotificationRef, channel: Channel, reason: str) -> None:
        """Failed for good, the record being on the DLQ; unlike ``record_failure`` this is not a delivery attempt."""
        handed, handed_values = _states(HANDED_OVER)
        self._update(
            notification,
            channel,
            ["#state = :failed", "last_error = :reason", "attempts = if_not_exists(attempts, :zero)"],
            {
                ":failed": {"S": DeliveryState.FAILED.value},
                ":reason": {"S": reason[:_MAX_ERROR]},
                ":zero": {"N": "0"},
                **handed_values,
            },
            event=_event("failed", self._clock(), reason),
            remove=("lease_until",),
            condition=f"attribute_not_exists(#state) OR NOT #state IN ({handed})",
        )

    # -- reading ---------------------------------------------------------------------------------------------

    def get(self, notification: NotificationRef) -> NotificationStatus | None:
        response = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="notification_id = :id",
            ExpressionAttributeValues={":id": {"S": str(notification)}},
            ConsistentRead=True,
        )
        return read_status(notification, response.get("Items", []))

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
        One conditional write, which returns the row when its condition fails; a second write only then.
        """
        from notifications.feedback import Applied, NotYetSentError  # noqa: PLC0415 - only the feedback function

        now = self._clock()
        key = {"notification_id": {"S": str(notification)}, "channel": {"S": channel.value}}
        history_sets, history_values = _record_event(_event(state.value, at, reason))
        values: dict[str, Any] = {
            ":pid": {"S": provider_message_id},
            ":fid": {"S": feedback_id},
            ":fids": {"SS": [feedback_id]},
            ":now": {"S": now.isoformat()},
            ":expires": {"N": str(retention.expires_at(now, self._ttl))},
            **history_values,
        }
        sets = ["updated_at = :now", "#expires = :expires", *history_sets]
        if reason and state is not DeliveryState.DELIVERED:
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


# The order provider feedback moves a channel in (``record_feedback``): only ever to a later state.
_FEEDBACK_ORDER = (
    DeliveryState.SENT,
    DeliveryState.DELIVERED,
    DeliveryState.UNDELIVERABLE,
    DeliveryState.BOUNCED,
    DeliveryState.COMPLAINED,
)
