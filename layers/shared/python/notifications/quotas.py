"""Quotas: how much one caller may send, and how many messages one recipient may get, checked before Kafka.

Each quota is a fixed window:

- per caller: send requests per second and per UTC day, counted together in one item per caller and day (the
  day's count, and the count of the second it last counted);
- per recipient, whoever the caller: messages per hour to one address of each kind the requested channels deliver
  to (``registry.AddressKind``: a phone number, an email address, ...), counted as its kind counts it (every
  spelling of one mailbox is one recipient) and keyed by a digest of that, never the address; one item per
  recipient and hour.

A new notification takes one count from its caller's item first, and only when that was taken one from each of its
recipients' (together): a request refused for its caller's quotas takes nothing from any recipient, so a caller
over its own quota cannot use up a number's hour for the callers after it. If any quota is used up the
notification is refused (``QuotaExceededError``, with the seconds until that window ends) and nothing is
published. The counts the refused request took stay taken (fixed windows count attempts): a counter may run ahead
of what was sent, never behind. A replay of an accepted request publishes nothing and takes nothing.

A recipient's quota counts every caller's messages, so its refusal says only that a recipient's hourly quota is
used up: not which address, not the limit, nothing of the counts (``Quota.shared``). The caller's own quotas are
named with their limits: its own traffic explains them.

The counters live behind ``CounterStore``: in AWS ``DynamoCounterStore``, one conditional ``UpdateItem`` per
item, the recipients' sent together: two round trips when the request has a recipient, one otherwise. Not one
transaction (``TransactWriteItems``) for all of them, which would refuse the recipients in the same round trip:
see ``DynamoCounterStore``. In tests an in-memory store.
"""

from __future__ import annotations

import enum
import hashlib
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from notifications.errors import NotificationError
from notifications.registry import address_kinds

SECOND, HOUR, DAY = 1, 3600, 86400


@dataclass(frozen=True)
class Quota:
    """At most ``limit`` counts per window of ``seconds`` (windows start at multiples of ``seconds``, UTC)."""

    name: str
    limit: int
    seconds: int
    shared: bool = False  # counts every caller's messages (a recipient's): its refusal names neither it nor its limit


class QuotaExceededError(NotificationError):
    """A quota is used up for this window; ``retry_after`` is the whole seconds until the window ends. The message
    is the caller's to read (the 429 body); ``quota`` is for the operator's log."""

    def __init__(self, quota: Quota, retry_after: int) -> None:
        if quota.shared:
            super().__init__("a recipient's quota of messages per hour is used up")
        else:
            super().__init__(f"quota {quota.name} ({quota.limit} per {quota.seconds} s) is used up")
        self.quota = quota
        self.retry_after = retry_after


class QuotaStoreError(NotificationError):
    """The counter store did not answer: nothing may be accepted unchecked."""


@dataclass(frozen=True)
class Count:
    """One more in ``counter`` unless it holds ``limit`` already; the counter may be forgotten from ``expires_at``
    (epoch seconds) on. With ``second`` (epoch second) the same item also counts that second, up to
    ``second_limit``: a count is taken from both or from neither."""

    counter: str
    limit: int
    expires_at: int
    second: int | None = None
    second_limit: int = 0

    def __post_init__(self) -> None:
        if self.second is not None and self.second_limit < 1:
            raise ValueError("a counted second needs a limit of at least 1")


class Full(enum.Enum):
    """Why a count was not taken."""

    WINDOW = "window"  # the counter's own window holds its limit
    SECOND = "second"  # the second counted with it holds its limit


class CounterStore(Protocol):
    """Port: fixed-window counters."""

    def take(self, counts: Sequence[Count]) -> list[Full | None]:
        """Take each count; for each, None when taken, else which of its windows was full."""
        ...


def recipient_digest(field_name: str, address: str) -> str:
    """The recipient as a quota subject: a digest of the customer field and the case-folded address."""
    return hashlib.sha256(f"{field_name}\n{address.casefold()}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class QuotaLimits:
    caller_per_second: int
    caller_per_day: int
    # Per customer field a channel delivers to (``registry.address_kinds()``): messages per hour to one address.
    recipient_per_hour: Mapping[str, int]


@dataclass
class Quotas:
    store: CounterStore
    limits: QuotaLimits
    clock: Callable[[], float] = time.time
    _per_second: Quota = field(init=False)
    _per_day: Quota = field(init=False)

    def __post_init__(self) -> None:
        self._per_second = Quota("caller_per_second", self.limits.caller_per_second, SECOND)
        self._per_day = Quota("caller_per_day", self.limits.caller_per_day, DAY)

    def charge(self, caller: str, recipients: Iterable[tuple[str, str]]) -> None:
        """Count one notification of ``caller`` to ``recipients`` (customer field, address); raise when over. The
        recipients are counted only once the caller's count is taken."""
        now = self.clock()
        second = int(now)
        day = second // DAY * DAY
        caller_count = Count(f"caller#{caller}#{day}", self._per_day.limit, day + DAY, second, self._per_second.limit)
        [full] = self.store.take([caller_count])
        if full is Full.WINDOW:
            raise QuotaExceededError(self._per_day, retry_after=max(1, math.ceil(day + DAY - now)))
        if full is Full.SECOND:
            raise QuotaExceededError(self._per_second, retry_after=max(1, math.ceil(second + SECOND - now)))
        hour = second // HOUR * HOUR
        windows: list[tuple[Quota, Count]] = []
        for field_name, address in recipients:
            if (limit := self.limits.recipient_per_hour.get(field_name)) is not None:
                quota = Quota(f"{field_name}_per_hour", limit, HOUR, shared=True)
                subject = recipient_digest(field_name, address)
                windows.append((quota, Count(f"{quota.name}#{subject}#{hour}", limit, hour + HOUR)))
        if not windows:
            return
        outcomes = self.store.take([count for _, count in windows])
        # All of them end with this hour: the first refused one stands for all
        for (quota, _), full in zip(windows, outcomes, strict=True):
            if full is not None:
                raise QuotaExceededError(quota, retry_after=max(1, math.ceil(hour + HOUR - now)))


class DynamoCounterStore:
    """CounterStore on DynamoDB: item key ``counter``, count ``count``, TTL attribute ``expires_at``; a counter that
    also counts seconds holds the second it counts in ``second`` and that second's count in ``second_count``.

    One conditional ``UpdateItem`` per item; the items of one ``take`` are updated at once from a small thread pool
    (boto3 clients are thread-safe), so they cost one round trip (``Quotas`` takes the caller's, then the
    recipients'). Not one transaction: a transaction over the counters would fail whenever two requests touch the
    same caller's counter at once
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html, "Transaction conflict
    handling"), and each item in it costs two writes. In each update ``ADD`` creates the item or adds to it
    atomically, and the condition keeps a full counter at its limit (``ConditionalCheckFailedException``:
    refused). UpdateItem "edits an existing item's attributes, or adds a new item to the table if it does not
    already exist"
    (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html; ADD:
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.UpdateExpressions.html). TTL
    deletes expired items within days, not at once (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
    TTL.html): no window is ever counted again once it has passed, so a late deletion changes nothing.

    An update cannot choose between "one more in this second" and "this is a new second", so a counter with seconds
    is updated for the one this environment expects (the second it last counted on that item: the same one, or a
    new one) and, when its condition fails, the item as it was decides: full, or the other update. The failed
    update returns that item (``ReturnValuesOnConditionCheckFailure``, API_UpdateItem.html above; no item when
    there is none yet: nothing counted). A busy caller's requests mostly land in a second already counted, a quiet
    caller's in a new one: one UpdateItem either way, two when another environment moved on to a new second first.
    """

    _ATTEMPTS = 4  # each failed one means another request changed the item in between
    _REMEMBERED = 1024  # counters whose last second this environment keeps

    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table = table_name
        self._ddb = dynamodb
        self._pool = ThreadPoolExecutor(
            # at once: one per customer address field (the caller's item goes first, alone)
            max_workers=len(address_kinds()) or 1,
            thread_name_prefix="quota",
        )
        self._last_second: dict[str, int] = {}

    def take(self, counts: Sequence[Count]) -> list[Full | None]:
        if len(counts) == 1:
            return [self._take(counts[0])]
        return list(self._pool.map(self._take, counts))

    def _take(self, count: Count) -> Full | None:
        try:
            return self._take_window(count) if count.second is None else self._take_with_second(count)
        except QuotaStoreError:
            raise
        except Exception as exc:
            raise QuotaStoreError(f"quota counter update failed: {type(exc).__name__}") from exc

    def _take_window(self, count: Count) -> Full | None:
        try:
            self._update(
                count,
                "ADD #count :one SET expires_at = :expires",
                "attribute_not_exists(#count) OR #count < :limit",
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return Full.WINDOW
        return None

    def _take_with_second(self, count: Count) -> Full | None:
        assert count.second is not None
        second = count.second
        same = self._last_second.get(count.counter) == second
        for _ in range(self._ATTEMPTS):
            try:
                if same:
                    self._update(
                        count,
                        "ADD #count :one, second_count :one SET expires_at = :expires",
                        "#second = :second AND (attribute_not_exists(second_count) OR second_count < :second_limit)"
                        " AND (attribute_not_exists(#count) OR #count < :limit)",
                        second=second,
                    )
                else:
                    self._update(
                        count,
                        "ADD #count :one SET #second = :second, second_count = :one, expires_at = :expires",
                        "(attribute_not_exists(#second) OR #second < :second)"
                        " AND (attribute_not_exists(#count) OR #count < :limit)",
                        second=second,
                    )
            except self._ddb.exceptions.ConditionalCheckFailedException as exc:
                old: dict[str, Any] = exc.response.get("Item", {})  # none: no item yet, nothing counted
                if _number(old, "count") >= count.limit:
                    return Full.WINDOW
                counted = _number(old, "second")
                if counted >= second:  # this second is being counted (or a later one: another clock is ahead)
                    if _number(old, "second_count") >= count.second_limit:
                        return Full.SECOND
                    second, same = counted, True
                else:
                    same = False
                continue
            if len(self._last_second) >= self._REMEMBERED:
                self._last_second.clear()
            self._last_second[count.counter] = second
            return None
        raise QuotaStoreError("quota counter changed on every attempt")

    def _update(self, count: Count, expression: str, condition: str, *, second: int | None = None) -> None:
        names = {"#count": "count"}  # COUNT is a reserved word
        values = {
            ":one": {"N": "1"},
            ":limit": {"N": str(count.limit)},
            ":expires": {"N": str(count.expires_at)},
        }
        if second is not None:
            names["#second"] = "second"
            values[":second"] = {"N": str(second)}
            if "second_limit" in condition:
                values[":second_limit"] = {"N": str(count.second_limit)}
        self._ddb.update_item(
            TableName=self._table,
            Key={"counter": {"S": count.counter}},
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )


def _number(item: dict[str, Any], name: str) -> int:
    return int(item.get(name, {}).get("N", "0"))
