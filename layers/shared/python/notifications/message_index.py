"""Which notification and channel sent a provider message id: the status table's ``provider_message_id`` index.

Only SMS feedback needs it (an SNS delivery log names nothing but the message id; email events carry the
notification's key in their SES tags). The index is keys-only: a query answers the row's key, nothing else.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from notifications.contracts.keys import NotificationKey, NotificationRef
from notifications.registry import Channel

INDEX_NAME = "provider_message_id-index"


def notification_ref(partition_key: str) -> NotificationRef | None:
    """The notification a status row's partition key names (``<caller>/<id>``, or a bare id for v1)."""
    caller, _, bare = partition_key.rpartition("/")
    try:
        notification_id = UUID(bare)
    except ValueError:
        return None
    return NotificationKey(caller, notification_id) if caller else notification_id


class DynamoMessageIndex:
    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table = table_name
        self._ddb = dynamodb

    def find(self, provider_message_id: str) -> tuple[NotificationRef, Channel] | None:
        response = self._ddb.query(
            TableName=self._table,
            IndexName=INDEX_NAME,
            KeyConditionExpression="provider_message_id = :pid",
            ExpressionAttributeValues={":pid": {"S": provider_message_id}},
            Limit=2,
        )
        for item in response.get("Items", []):
            notification = notification_ref(item["notification_id"]["S"])
            channel = item["channel"]["S"]
            if notification is not None and channel in {known.value for known in Channel}:
                return notification, Channel(channel)
        return None
