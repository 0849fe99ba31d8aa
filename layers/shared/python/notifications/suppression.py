"""The suppression list: email addresses that bounced permanently or complained, never mailed again.

SES's own account-level suppression list (https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SuppressionOptions.html)
would also stop such deliveries, but SES still takes the call and counts it as a send, the delivery suppressed
(https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_EventDestination.html, SEND): the sender could not
tell at once, and moto has no such list to test against. So the project keeps its own table, keyed by a digest of
the normalized address (no address is stored), checked by the email sender before it sends (one BatchGetItem for
a whole batch of emails, or one GetItem for a single send) and written by the feedback function.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection
from datetime import datetime
from typing import Any

# BatchGetItem: at most 100 keys a call; keys it could not read come back as UnprocessedKeys, to be asked again
# (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html).
_BATCH_KEYS = 100
_BATCH_ATTEMPTS = 5


def address_key(address: str) -> str:
    """The table key of an address: SHA-256 of it trimmed and lower-cased (mailbox names are case-insensitive
    in practice, and SES reports addresses as the recipient's server wrote them)."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


class DynamoSuppressionList:
    """SuppressionList on a DynamoDB table with the partition key ``address_hash``."""

    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table = table_name
        self._ddb = dynamodb

    def suppress(self, address: str, *, reason: str, at: datetime) -> None:
        # The first reason and time are kept; later feedback only counts.
        self._ddb.update_item(
            TableName=self._table,
            Key={"address_hash": {"S": address_key(address)}},
            UpdateExpression="SET reason = if_not_exists(reason, :reason), "
            "suppressed_at = if_not_exists(suppressed_at, :at) ADD events :one",
            ExpressionAttributeValues={":reason": {"S": reason}, ":at": {"S": at.isoformat()}, ":one": {"N": "1"}},
        )

    def is_suppressed(self, address: str) -> bool:
        response = self._ddb.get_item(
            TableName=self._table,
            Key={"address_hash": {"S": address_key(address)}},
            ProjectionExpression="address_hash",
        )
        return "Item" in response

    def suppressed(self, addresses: Collection[str]) -> set[str]:
        """Which of ``addresses`` are on the list, in one ``BatchGetItem`` per 100 distinct addresses."""
        by_key: dict[str, list[str]] = {}
        for address in addresses:
            by_key.setdefault(address_key(address), []).append(address)
        keys = list(by_key)
        found: set[str] = set()
        for start in range(0, len(keys), _BATCH_KEYS):
            request: dict[str, Any] = {
                self._table: {
                    "Keys": [{"address_hash": {"S": key}} for key in keys[start : start + _BATCH_KEYS]],
                    "ProjectionExpression": "address_hash",
                }
            }
            for attempt in range(_BATCH_ATTEMPTS):
                if attempt:  # keys left unprocessed: ask again after a short, growing pause
                    time.sleep(0.05 * 2 ** (attempt - 1))
                response = self._ddb.batch_get_item(RequestItems=request)
                found.update(item["address_hash"]["S"] for item in response["Responses"].get(self._table, []))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise SuppressionListError(f"{len(request[self._table]['Keys'])} addresses left unread")
        return {address for key in found for address in by_key[key]}


class SuppressionListError(RuntimeError):
    """The suppression list could not be read in full."""
