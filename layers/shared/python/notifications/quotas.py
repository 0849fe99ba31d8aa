"""Quotas: how much one caller may send, and how many messages one recipient may get, checked before Kafka.

Each quota is a fixed window counted in one item per subject and window:

- per caller: send requests per second and per UTC day;
- per recipient, whoever the caller: messages per hour to one phone number, and to one email address (the
  customer fields the requested channels deliver to; keyed by a digest of the address, never the address).

A new notification takes one count from each of its quotas at once; if any is used up the notification is refused
(``QuotaExceededError``, with the seconds until the last such window ends) and nothing is published. The counts
the refused request took from its other quotas stay taken (fixed windows count attempts): a counter may run ahead
of what was sent, never behind. A replay of an accepted request publishes nothing and takes nothing.

The counters live behind ``CounterStore``: in AWS ``DynamoCounterStore``, one conditional ``UpdateItem`` per
counter, all of a request's sent together (one round trip); in tests an in-memory store.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from notifications.errors import NotificationError

SECOND, HOUR, DAY = 1, 3600, 86400
_MAX_COUNTS = 4  # two caller quotas and one per customer-addressed field


@dataclass(frozen=True)
class Quota:
    """At most ``limit`` counts per window of ``seconds`` (windows start at multiples of ``seconds``, UTC)."""

    name: str
    limit: int
    seconds: int


class QuotaExceededError(NotificationError):
    """A quota is used up for this window; ``retry_after`` is the whole seconds until the window ends."""

    def __init__(self, quota: Quota, retry_after: int) -> None:
        super().__init__(f"quota {quota.name} ({quota.limit} per {quota.seconds} s) is used up")
        self.quota = quota
        self.retry_after = retry_after


class QuotaStoreError(NotificationError):
    """The counter store did not answer: nothing may be accepted unchecked."""


@dataclass(frozen=True)
class Count:
    """One more in ``counter`` unless it holds ``limit`` already; the counter may be forgotten from ``expires_at``
    (epoch seconds) on."""

    counter: str
    limit: int
    expires_at: int


class CounterStore(Protocol):
    """Port: fixed-window counters."""

    def take(self, counts: Sequence[Count]) -> list[bool]:
        """Take each count; for each, whether it was taken (False: its counter was full)."""
        ...


def recipient_digest(field_name: str, address: str) -> str:
    """The recipient as a quota subject: a digest of the customer field and the case-folded address."""
    return hashlib.sha256(f"{field_name}\n{address.casefold()}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class QuotaLimits:
    caller_per_second: int
    caller_per_day: int
    # Per customer field a channel delivers to (``customer_addressed()``): messages per hour to one address.
    recipient_per_hour: Mapping[str, int]


@dataclass
class Quotas:
    store: CounterStore
    limits: QuotaLimits
    clock: Callable[[], float] = time.time
    _caller_quotas: tuple[Quota, Quota] = field(init=False)

    def __post_init__(self) -> None:
        self._caller_quotas = (
            Quota("caller_per_second", self.limits.caller_per_second, SECOND),
            Quota("caller_per_day", self.limits.caller_per_day, DAY),
        )

    def charge(self, caller: str, recipients: Iterable[tuple[str, str]]) -> None:
        """Count one notification of ``caller`` to ``recipients`` (customer field, address); raise when over."""
        now = self.clock()
        windows = []
        for quota, subject in self._subjects(caller, recipients):
            start = int(now) // quota.seconds * quota.seconds
            windows.append((quota, Count(f"{quota.name}#{subject}#{start}", quota.limit, start + quota.seconds)))
        taken = self.store.take([count for _, count in windows])
        refused = [(quota, count) for (quota, count), ok in zip(windows, taken, strict=True) if not ok]
        if refused:
            quota, count = max(refused, key=lambda pair: pair[1].expires_at)
            raise QuotaExceededError(quota, retry_after=max(1, math.ceil(count.expires_at - now)))

    def _subjects(self, caller: str, recipients: Iterable[tuple[str, str]]) -> Iterator[tuple[Quota, str]]:
        for quota in self._caller_quotas:
            yield quota, caller
        for field_name, address in recipients:
            if (limit := self.limits.recipient_per_hour.get(field_name)) is not None:
                yield Quota(f"{field_name}_per_hour", limit, HOUR), recipient_digest(field_name, address)


class DynamoCounterStore:
    """CounterStore on DynamoDB: item key ``counter``, count ``count``, TTL attribute ``expires_at``.

    One conditional ``UpdateItem`` per count; a request's counts are sent at once from a small thread pool (boto3
    clients are thread-safe), so they cost one round trip. Not fewer calls: an UpdateItem changes one item, and a
    transaction over the counters would fail whenever two requests touch the same caller's counter at once
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html, "Transaction conflict
    handling"). In each update ``ADD`` creates the item or adds to it atomically, and the condition
    keeps a full counter at its limit (``ConditionalCheckFailedException``: refused). UpdateItem "edits an existing
    item's attributes, or adds a new item to the table if it does not already exist"
    (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html; ADD:
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.UpdateExpressions.html). TTL
    deletes expired items within days, not at once (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/
    TTL.html): no window is ever counted again once it has passed, so a late deletion changes nothing.
    """

    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table = table_name
        self._ddb = dynamodb
        self._pool = ThreadPoolExecutor(max_workers=_MAX_COUNTS, thread_name_prefix="quota")

    def take(self, counts: Sequence[Count]) -> list[bool]:
        if len(counts) == 1:
            return [self._take(counts[0])]
        return list(self._pool.map(self._take, counts))

    def _take(self, count: Count) -> bool:
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"counter": {"S": count.counter}},
                UpdateExpression="ADD #count :one SET expires_at = :expires",
                ConditionExpression="attribute_not_exists(#count) OR #count < :limit",
                ExpressionAttributeNames={"#count": "count"},  # COUNT is a reserved word
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(count.limit)},
                    ":expires": {"N": str(count.expires_at)},
                },
            )
        except self._ddb.exceptions.ConditionalCheckFailedException:
            return False
        except Exception as exc:
            raise QuotaStoreError(f"quota counter update failed: {type(exc).__name__}") from exc
        return True
