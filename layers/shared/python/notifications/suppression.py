"""The suppression list: email addresses that bounced permanently or complained, never mailed again.

SES's own account-level suppression list (https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SuppressionOptions.html)
would also stop such deliveries, but SES still takes the call and counts it as a send, the delivery suppressed
(https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_EventDestination.html, SEND): the sender could not
tell at once, and moto has no such list to test against. So the project keeps its own table, keyed by a digest of
the normalized address (no address is stored), checked by the email sender before each send (one GetItem) and
written by the feedback function.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any


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
