"""Erasure: remove one caller's customer's data from the tables (a data subject's request to erase, GDPR Art. 17).

    notifications-erase --caller c-<26 letters> --customer-id 42 [--dry-run]

Customer ids are the shops' own, so two callers (shops) may each have a customer ``42``: the caller says whose.
Its id is the one the API gives it (``notifications.callers``; ``python -m notifications.callers iam <arn>`` or
``jwt <iss> <sub>`` prints it). Nothing outside that caller's namespace is read for deletion or deleted.

What it removes, in this order:

1. finds the customer's notifications: a Scan of the status table for the caller's items (partition key
   ``<caller id>/<notification id>``) whose ``customer_id`` is the customer (ingest records it on the
   notification's own item, ``notifications.retention``);
2. deletes every status item of those notifications: the notification's own item (``#notification``, ingest's
   idempotency record of the notification id) and every channel's row (each send's claim and outcome);
3. deletes the caller's records of its own idempotency keys that name one of those notifications (id
   ``<caller id>#key#<key>``, ``notification_id`` the notification's key); a Scan of the idempotency table.

What it leaves: everything of other callers, their customer of the same id and their notification of the same id
included (their claim rows still deduplicate redeliveries and redrives); the suppression list (keyed by a digest of
the address, shared by all callers: a bounce or complaint is a fact about the address, not a caller's data; it
stores no address); the quota counters (a digest of the address and a count per hour, expiring); items keyed by a
bare notification id (v1 envelopes, before callers) and the Powertools records of versions before the ledger,
which name no caller and so cannot be told from another caller's (both expire: ``expires_at``, ``expiration``).

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
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from notifications.contracts.fields import CALLER_ID_PATTERN
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


def find(ddb: Any, status_table: str, idempotency_table: str, caller: str, customer_id: str) -> Erasure:
    """The keys of every item of ``caller``'s customer ``customer_id`` in both tables, none of another caller."""
    found = Erasure()
    namespace = f"{caller}/"  # NotificationKey: <caller id>/<notification id>
    for item in _scan(
        ddb,
        TableName=status_table,
        FilterExpression="begins_with(notification_id, :namespace) AND #customer = :customer",
        ProjectionExpression="notification_id",
        ExpressionAttributeNames={"#customer": STATUS_CUSTOMER_ATTRIBUTE},
        ExpressionAttributeValues={":namespace": {"S": namespace}, ":customer": {"S": customer_id}},
    ):
        notification_id = item["notification_id"]["S"]
        if notification_id not in found.notification_ids:
            found.notification_ids.append(notification_id)
    for notification_id in found.notification_ids:  # the notification's item and every channel's row (claims)
        pages = ddb.get_paginator("query").paginate(
            TableName=status_table,
            KeyConditionExpression="notification_id = :id",
            ProjectionExpression="notification_id, #channel",
            ExpressionAttributeNames={"#channel": "channel"},
            ExpressionAttributeValues={":id": {"S": notification_id}},
        )
        found.status_keys += [item for page in pages for item in page.get("Items", [])]
    if found.notification_ids:
        # The caller's own idempotency keys (notifications.ledger): id <caller id>#key#<key>, naming the
        # notification by its full key, so another caller's notification of the same id never matches.
        wanted = set(found.notification_ids)
        for item in _scan(
            ddb,
            TableName=idempotency_table,
            FilterExpression="begins_with(id, :keys)",
            ProjectionExpression="id, notification_id",
            ExpressionAttributeValues={":keys": {"S": f"{caller}#key#"}},
        ):
            if item.get("notification_id", {}).get("S") in wanted:
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


def erase(
    ddb: Any, status_table: str, idempotency_table: str, caller: str, customer_id: str, *, dry_run: bool = False
) -> Erasure:
    """Find every item of ``caller``'s customer ``customer_id`` and, unless ``dry_run``, delete it (idempotency
    records first: a status item left behind by an interrupted run still leads a second run to the notification)."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - boto3 only in the command

    try:
        found = find(ddb, status_table, idempotency_table, caller, customer_id)
        if not dry_run:
            _delete(ddb, idempotency_table, found.idempotency_keys)
            _delete(ddb, status_table, found.status_keys)
    except (BotoCoreError, ClientError) as exc:
        raise EraseError(f"{type(exc).__name__}: {exc}") from exc
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notifications-erase", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--caller",
        help="the shop's caller id (c- and 26 letters, as the API logs it; python -m notifications.callers prints it)",
    )
    parser.add_argument("--customer-id", required=True, help="the customer's id as the shop sent it (customer.id)")
    parser.add_argument("--status-table", help="status table name (default: STATUS_TABLE_NAME)")
    parser.add_argument("--idempotency-table", help="idempotency table name (default: IDEMPOTENCY_TABLE_NAME)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be deleted, delete nothing")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, ddb: Any = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.caller is None:  # usage error, exit 2: customer ids are per shop, so the shop must be named
        parser.error("--caller is required: customer ids are per caller; give the shop's caller id (c-...)")
    if not re.fullmatch(CALLER_ID_PATTERN, args.caller):
        parser.error(f"--caller {args.caller!r} is not a caller id (c- and 26 letters a-z, 2-7)")
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
        found = erase(ddb, status_table, idempotency_table, args.caller, args.customer_id, dry_run=args.dry_run)
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
