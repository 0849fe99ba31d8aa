"""Erasure: remove one customer's data from the tables (a data subject's request to erase, GDPR Art. 17).

    notifications-erase --customer-id c-42 [--dry-run]

What it removes, in this order:

1. finds the customer's notifications: a Scan of the status table for items whose ``customer_id`` is the customer
   (ingest records it on each status item, ``notifications.retention``);
2. deletes every status item of those notifications (every channel), whatever its ``customer_id``;
3. deletes every idempotency record that names one of those notifications: ingest's records of clients' own
   idempotency keys (``notification_id``) and records of earlier versions, whose stored answer or receipt
   (``data``) holds the notification id; a Scan of the idempotency table. (Ingest's record of the notification
   itself is its status item, ``#notification``, deleted in step 2.)

It prints one line per notification and a summary, and with ``--dry-run`` deletes nothing. Running it twice is
safe: the second run finds nothing. It does not touch Kafka: records there are deleted by each topic's
``retention.ms`` (7 days, the DLQ 28), which bounds how long the customer's data stays anywhere (docs/security.md).
A notification accepted while the tool runs may escape it: run it again after the retention of in-flight records.

Cost: two full Scans. A Scan reads every item of the table whatever the filter, so it consumes read capacity for
the table's whole size: 0.5 read request unit per 4 KB with eventually consistent reads (on-demand: a 1 GB table
is about 131,000 RRU, a few cents); both tables stay small because their items expire (TTL).
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html#Scan.ReadConsumption

The tables and the AWS account are the functions' settings: ``STATUS_TABLE_NAME`` and ``IDEMPOTENCY_TABLE_NAME``
(flags override them), with boto3's credentials, region and endpoint (``AWS_ENDPOINT_URL`` for the local stack).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from notifications.retention import STATUS_CUSTOMER_ATTRIBUTE

# BatchWriteItem takes at most 25 requests: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html
_BATCH = 25


class EraseError(Exception):
    """The tables cannot be read or written."""


@dataclass
class Erasure:
    """What was found (and, unless a dry run, deleted) for one customer."""

    notification_ids: list[str] = field(default_factory=list)
    status_keys: list[dict[str, Any]] = field(default_factory=list)
    idempotency_keys: list[dict[str, Any]] = field(default_factory=list)


def _scan(ddb: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    for page in ddb.get_paginator("scan").paginate(**kwargs):
        yield from page.get("Items", [])


def find(ddb: Any, status_table: str, idempotency_table: str, customer_id: str) -> Erasure:
    """The keys of every item of ``customer_id`` in both tables."""
    found = Erasure()
    for item in _scan(
        ddb,
        TableName=status_table,
        FilterExpression="#customer = :customer",
        ProjectionExpression="notification_id",
        ExpressionAttributeNames={"#customer": STATUS_CUSTOMER_ATTRIBUTE},
        ExpressionAttributeValues={":customer": {"S": customer_id}},
    ):
        notification_id = item["notification_id"]["S"]
        if notification_id not in found.notification_ids:
            found.notification_ids.append(notification_id)
    for notification_id in found.notification_ids:  # every channel's item, also one written without customer_id
        pages = ddb.get_paginator("query").paginate(
            TableName=status_table,
            KeyConditionExpression="notification_id = :id",
            ProjectionExpression="notification_id, #channel",
            ExpressionAttributeNames={"#channel": "channel"},
            ExpressionAttributeValues={":id": {"S": notification_id}},
        )
        found.status_keys += [item for page in pages for item in page.get("Items", [])]
    if found.notification_ids:
        # Status keys are ``<caller id>/<notification id>``; the idempotency records name the notification id.
        wanted = tuple(key.rsplit("/", 1)[-1] for key in found.notification_ids)
        for item in _scan(
            ddb,
            TableName=idempotency_table,
            ProjectionExpression="id, #data, notification_id",
            ExpressionAttributeNames={"#data": "data"},
        ):
            names = item.get("data", {}).get("S", "") + item.get("notification_id", {}).get("S", "")
            if any(notification_id in names for notification_id in wanted):
                found.idempotency_keys.append({"id": item["id"]})
    return found


def _delete(ddb: Any, table: str, keys: list[dict[str, Any]]) -> None:
    for start in range(0, len(keys), _BATCH):
        pending: dict[str, Any] = {table: [{"DeleteRequest": {"Key": key}} for key in keys[start : start + _BATCH]]}
        for _ in range(10):  # unprocessed items come back under throttling; try them again
            answer = ddb.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}
            if not pending:
                break
        if pending:
            raise EraseError(f"{table}: {len(pending[table])} item(s) could not be deleted; run the tool again")


def erase(ddb: Any, status_table: str, idempotency_table: str, customer_id: str, *, dry_run: bool = False) -> Erasure:
    """Find every item of ``customer_id`` and, unless ``dry_run``, delete it (idempotency records first: a status
    item left behind by an interrupted run still leads a second run to the notification)."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - boto3 only in the command

    try:
        found = find(ddb, status_table, idempotency_table, customer_id)
        if not dry_run:
            _delete(ddb, idempotency_table, found.idempotency_keys)
            _delete(ddb, status_table, found.status_keys)
    except (BotoCoreError, ClientError) as exc:
        raise EraseError(f"{type(exc).__name__}: {exc}") from exc
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notifications-erase", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customer-id", required=True, help="the customer's id as the shop sent it (customer.id)")
    parser.add_argument("--status-table", help="status table name (default: STATUS_TABLE_NAME)")
    parser.add_argument("--idempotency-table", help="idempotency table name (default: IDEMPOTENCY_TABLE_NAME)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be deleted, delete nothing")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, ddb: Any = None) -> int:
    args = _parser().parse_args(argv)
    out = out or sys.stdout
    status_table = args.status_table or os.environ.get("STATUS_TABLE_NAME")
    idempotency_table = args.idempotency_table or os.environ.get("IDEMPOTENCY_TABLE_NAME")
    if not status_table or not idempotency_table:
        sys.stderr.write("error: give --status-table and --idempotency-table (or STATUS_/IDEMPOTENCY_TABLE_NAME)\n")
        return 2
    if ddb is None:
        import boto3  # noqa: PLC0415

        ddb = boto3.client("dynamodb")
    try:
        found = erase(ddb, status_table, idempotency_table, args.customer_id, dry_run=args.dry_run)
    except EraseError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    verb = "would delete" if args.dry_run else "deleted"
    for notification_id in found.notification_ids:
        out.write(f"{verb} notification {notification_id}\n")
    out.write(
        f"{verb} {len(found.status_keys)} status item(s) and {len(found.idempotency_keys)} idempotency record(s) "
        f"of {len(found.notification_ids)} notification(s)\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
