"""Ingest's idempotency records, which are also the notification's status view: two store round trips per request.

A request claims its notification's item (``#notification`` in the status table, ``notifications.status``) with one
conditional write, is published, and completes the item with its 202 answer with a second write. The item makes a
notification id one notification in its caller's namespace: the same id with another payload is refused, the
same payload is answered with the stored 202 (a replay), and GET reads the item, so a notification is visible
from its 202 on, before any sender wrote its channel's row.

A client's own ``Idempotency-Key`` (other than the notification id) gets an item of its own in the idempotency
table, claimed and completed in the same transaction as the notification's item (``TransactWriteItems``: still
one round trip each): the same key with another payload is refused too.

A claim is a lease: a request that crashed between claim and completion blocks its key only until the lease
lapses (the invocation's remaining time). A request that failed (Kafka did not acknowledge) deletes its claim, so
the client's retry goes through at once.

Why not Powertools Idempotency here: it writes its own record (two writes per key) and the status view would be
a third write per channel (five to eight round trips per request); the status item cannot be its record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from notifications import retention
from notifications.contracts.api import Accepted
from notifications.contracts.keys import NotificationKey
from notifications.status import NOTIFICATION_ITEM, StatusTable

IN_PROGRESS = "in_progress"
ACCEPTED = "accepted"


@dataclass(frozen=True)
class Entry:
    """A claim found in the way: its payload digest and, once accepted, the 202 it was answered with."""

    digest: str
    accepted: Accepted | None
    lease_until: float


@dataclass(frozen=True)
class Claimed:
    """What stood in the way of a claim; both None means the claim was taken."""

    notification: Entry | None = None
    client_key: Entry | None = None

    @property
    def taken(self) -> bool:
        return self.notification is None and self.client_key is None


class Ledger(Protocol):
    def claim(
        self, key: NotificationKey, client_key: str | None, digest: str, lease_seconds: float, customer_id: str | None
    ) -> Claimed: ...

    def complete(self, key: NotificationKey, client_key: str | None, accepted: Accepted) -> None: ...

    def release(self, key: NotificationKey, client_key: str | None) -> None: ...


class DynamoLedger:
    """The ledger on the status table (notification items, with the table's client, clock and retention) and the
    idempotency table (client keys' items)."""

    def __init__(self, status: StatusTable, idempotency_table: str, *, key_ttl_seconds: int) -> None:
        self._status = status
        self._idempotency = idempotency_table
        self._ddb = status.dynamodb
        self._key_ttl = key_ttl_seconds

    def _keys(self, key: NotificationKey, client_key: str | None) -> list[tuple[str, dict[str, Any]]]:
        keys = [(self._status.name, self._status.key(key, NOTIFICATION_ITEM))]
        if client_key is not None:
            keys.append((self._idempotency, {"id": {"S": f"{key.caller}#key#{client_key}"}}))
        return keys

    def claim(
        self, key: NotificationKey, client_key: str | None, digest: str, lease_seconds: float, customer_id: str | None
    ) -> Claimed:
        now = self._status.clock()
        common: dict[str, Any] = {
            "state": {"S": IN_PROGRESS},
            "digest": {"S": digest},
            "lease_until": {"N": f"{now.timestamp() + lease_seconds:.3f}"},
        }
        items = []
        for table, item_key in self._keys(key, client_key):
            item = {**item_key, **common}
            if table == self._status.name:
                item[retention.STATUS_EXPIRES_ATTRIBUTE] = self._status.expires(now)
                if customer_id:  # lets the erasure tool find the customer's notifications (ops/erase.py)
                    item[retention.STATUS_CUSTOMER_ATTRIBUTE] = {"S": customer_id}
            else:
                item["notification_id"] = {"S": str(key)}
                item[retention.IDEMPOTENCY_EXPIRES_ATTRIBUTE] = {"N": str(retention.expires_at(now, self._key_ttl))}
            items.append((table, item))
        condition = {
            "ConditionExpression": "attribute_not_exists(#state) OR (#state = :in_progress AND lease_until < :now)",
            "ExpressionAttributeNames": {"#state": "state"},
            "ExpressionAttributeValues": {":in_progress": {"S": IN_PROGRESS}, ":now": {"N": f"{now.timestamp():.3f}"}},
        }
        if len(items) == 1:
            [(table, item)] = items
            try:
                self._ddb.put_item(
                    TableName=table, Item=item, ReturnValuesOnConditionCheckFailure="ALL_OLD", **condition
                )
            except self._ddb.exceptions.ConditionalCheckFailedException as exc:
                # The claim in the way comes back with the failed condition (ReturnValuesOnConditionCheckFailure).
                # The condition holds where there is no item, so an answer without one has no claim to replay: in
                # flight (the client retries), as for a cancelled transaction below whose read finds nothing.
                old = getattr(exc, "response", {}).get("Item")
                if old is None:
                    return Claimed(notification=Entry(digest, None, float("inf")))
                return Claimed(notification=_entry(old))
            return Claimed()
        try:
            self._ddb.transact_write_items(
                TransactItems=[{"Put": {"TableName": table, "Item": item, **condition}} for table, item in items]
            )
        except (
            self._ddb.exceptions.TransactionCanceledException,
            self._ddb.exceptions.ConditionalCheckFailedException,
        ):
            found = self._read(key, client_key)
            # Cancelled by a concurrent transaction on the same items: nothing to replay yet, the same request is
            # being processed right now.
            return found if not found.taken else Claimed(notification=Entry(digest, None, float("inf")))
        return Claimed()

    def _read(self, key: NotificationKey, client_key: str | None) -> Claimed:
        keys = self._keys(key, client_key)
        request: dict[str, Any] = {}
        for table, item_key in keys:
            request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(item_key)
        found = self._ddb.batch_get_item(RequestItems=request)["Responses"]
        notification = next(iter(found.get(self._status.name, [])), None)
        keyed = next(iter(found.get(self._idempotency, [])), None) if client_key is not None else None
        return Claimed(
            notification=_entry(notification) if notification else None,
            client_key=_entry(keyed) if keyed else None,
        )

    def complete(self, key: NotificationKey, client_key: str | None, accepted: Accepted) -> None:
        update: dict[str, Any] = {
            "UpdateExpression": "SET #state = :accepted, #response = :response REMOVE lease_until",
            "ExpressionAttributeNames": {"#state": "state", "#response": "response"},
            "ExpressionAttributeValues": {
                ":accepted": {"S": ACCEPTED},
                ":response": {"S": accepted.model_dump_json()},
            },
        }
        keys = self._keys(key, client_key)
        if len(keys) == 1:
            [(table, item_key)] = keys
            self._ddb.update_item(TableName=table, Key=item_key, **update)
            return
        self._ddb.transact_write_items(
            TransactItems=[{"Update": {"TableName": table, "Key": item_key, **update}} for table, item_key in keys]
        )

    def release(self, key: NotificationKey, client_key: str | None) -> None:
        for table, item_key in self._keys(key, client_key):
            try:
                self._ddb.delete_item(
                    TableName=table,
                    Key=item_key,
                    ConditionExpression="#state = :in_progress",
                    ExpressionAttributeNames={"#state": "state"},
                    ExpressionAttributeValues={":in_progress": {"S": IN_PROGRESS}},
                )
            except self._ddb.exceptions.ConditionalCheckFailedException:
                continue


def _entry(item: dict[str, Any]) -> Entry:
    response = item.get("response", {}).get("S")
    return Entry(
        digest=item.get("digest", {}).get("S", ""),
        accepted=Accepted.model_validate(json.loads(response)) if response else None,
        lease_until=float(item.get("lease_until", {}).get("N", "0")),
    )
