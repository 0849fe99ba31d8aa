"""The local stack's DynamoDB (dynalite on LevelDB, ``devstack.dynamodb_local``) through ordinary boto3 clients:
it keeps its items across a restart, it runs the transactions the ingest's ledger writes, and a failed condition
returns the item as AWS does.

TransactWriteItems as AWS documents it (API reference:
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html): all or nothing; a
failed condition cancels the whole transaction with ``TransactionCanceledException`` and one cancellation reason
per item, in order. ``ReturnValuesOnConditionCheckFailure`` as AWS documents it (API reference:
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html#DDB-UpdateItem-request-ReturnValuesOnConditionCheckFailure,
the same in API_PutItem.html, API_DeleteItem.html and, per item, API_TransactWriteItems.html): with ``ALL_OLD``
the ``ConditionalCheckFailedException`` carries the item as it was (``Item``; none when there was no item).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack import aws_resources, dynamodb_local
from devstack.stack import DUMMY_CREDENTIALS, REGION
from notifications.quotas import Count, DynamoCounterStore, Full

STATUS, IDEMPOTENCY = aws_resources.STATUS_TABLE, aws_resources.IDEMPOTENCY_TABLE


@contextmanager
def dynamodb(path: Path) -> Iterator[Any]:
    dynamodb_local.install()
    proc = subprocess.Popen(dynamodb_local.command(0, path), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = json.loads(proc.stdout.readline())["port"]
        client = boto3.client(
            "dynamodb",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name=REGION,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        aws_resources.create_tables(client)
        yield client
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def claim(notification: str, key: str) -> list[dict[str, Any]]:
    condition = {"ConditionExpression": "attribute_not_exists(#s)", "ExpressionAttributeNames": {"#s": "state"}}
    return [
        {
            "Put": {
                "TableName": STATUS,
                "Item": {
                    "notification_id": {"S": notification},
                    "channel": {"S": "#notification"},
                    "state": {"S": "in_progress"},
                },
                **condition,
            }
        },
        {"Put": {"TableName": IDEMPOTENCY, "Item": {"id": {"S": key}, "state": {"S": "in_progress"}}, **condition}},
    ]


def status_item(client: Any, notification: str) -> dict[str, Any] | None:
    key = {"notification_id": {"S": notification}, "channel": {"S": "#notification"}}
    item: dict[str, Any] | None = client.get_item(TableName=STATUS, Key=key, ConsistentRead=True).get("Item")
    return item


def test_items_survive_a_restart(tmp_path: Path) -> None:
    with dynamodb(tmp_path) as client:
        client.transact_write_items(TransactItems=claim("shop/n-1", "shop#key#k-1"))
    with dynamodb(tmp_path) as client:
        assert status_item(client, "shop/n-1") is not None
        key_item = client.get_item(TableName=IDEMPOTENCY, Key={"id": {"S": "shop#key#k-1"}})["Item"]
        assert key_item["state"] == {"S": "in_progress"}


def test_a_transaction_whose_second_condition_fails_writes_nothing(tmp_path: Path) -> None:
    with dynamodb(tmp_path) as client:
        # Given a client key already claimed by another notification
        client.put_item(TableName=IDEMPOTENCY, Item={"id": {"S": "shop#key#k-2"}, "state": {"S": "accepted"}})

        # When a notification claims its item and that key in one transaction
        with pytest.raises(client.exceptions.TransactionCanceledException) as cancelled:
            client.transact_write_items(TransactItems=claim("shop/n-2", "shop#key#k-2"))

        # Then it is cancelled with one reason per item, and the first write was not kept
        reasons = [reason["Code"] for reason in cancelled.value.response["CancellationReasons"]]
        assert reasons == ["None", "ConditionalCheckFailed"]
        assert status_item(client, "shop/n-2") is None


def test_transact_get_items_answers_in_order(tmp_path: Path) -> None:
    with dynamodb(tmp_path) as client:
        client.transact_write_items(TransactItems=claim("shop/n-3", "shop#key#k-3"))
        answer = client.transact_get_items(
            TransactItems=[
                {"Get": {"TableName": IDEMPOTENCY, "Key": {"id": {"S": "shop#key#k-3"}}}},
                {"Get": {"TableName": IDEMPOTENCY, "Key": {"id": {"S": "shop#key#missing"}}}},
            ]
        )
        assert [bool(r.get("Item")) for r in answer["Responses"]] == [True, False]


def test_a_failed_condition_returns_the_item_when_asked_for_all_old(tmp_path: Path) -> None:
    with dynamodb(tmp_path) as client:
        # Given a channel row
        key = {"notification_id": {"S": "shop/n-4"}, "channel": {"S": "email"}}
        item = {**key, "state": {"S": "sent"}, "attempts": {"N": "1"}}
        client.put_item(TableName=STATUS, Item=item)
        condition = {"ConditionExpression": "attribute_not_exists(#s)", "ExpressionAttributeNames": {"#s": "state"}}
        writes = {
            "put_item": {"Item": {**key, "state": {"S": "accepted"}}},
            "update_item": {
                "Key": key,
                "UpdateExpression": "SET attempts = :two",
                "ExpressionAttributeValues": {":two": {"N": "2"}},
            },
            "delete_item": {"Key": key},
        }
        for operation, params in writes.items():
            write = getattr(client, operation)
            # When a write whose condition fails asks for the old item
            with pytest.raises(client.exceptions.ConditionalCheckFailedException) as failed:
                write(TableName=STATUS, ReturnValuesOnConditionCheckFailure="ALL_OLD", **params, **condition)
            # Then the error carries the item as it was
            error = failed.value.response
            assert error["Error"] == {
                "Code": "ConditionalCheckFailedException",
                "Message": "The conditional request failed",
            }, operation
            assert error["Item"] == item, operation
            # And without ALL_OLD it does not
            for without in ({}, {"ReturnValuesOnConditionCheckFailure": "NONE"}):
                with pytest.raises(client.exceptions.ConditionalCheckFailedException) as failed:
                    write(TableName=STATUS, **without, **params, **condition)
                assert "Item" not in failed.value.response, (operation, without)
        assert client.get_item(TableName=STATUS, Key=key, ConsistentRead=True)["Item"] == item

        # A failed condition where there is no item returns none, ALL_OLD or not
        missing = {"notification_id": {"S": "shop/n-5"}, "channel": {"S": "email"}}
        with pytest.raises(client.exceptions.ConditionalCheckFailedException) as failed:
            client.delete_item(
                TableName=STATUS,
                Key=missing,
                ConditionExpression="attribute_exists(#s)",
                ExpressionAttributeNames={"#s": "state"},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        assert "Item" not in failed.value.response


def test_a_cancelled_transaction_returns_the_failed_items_old_image_when_asked(tmp_path: Path) -> None:
    with dynamodb(tmp_path) as client:
        # Given a client key already claimed by another notification
        taken = {"id": {"S": "shop#key#k-6"}, "state": {"S": "accepted"}}
        client.put_item(TableName=IDEMPOTENCY, Item=taken)

        # When a transaction claims it, asking for the item of a failed condition, then without asking
        items = claim("shop/n-6", "shop#key#k-6")
        items[1]["Put"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        with pytest.raises(client.exceptions.TransactionCanceledException) as asked:
            client.transact_write_items(TransactItems=items)
        with pytest.raises(client.exceptions.TransactionCanceledException) as not_asked:
            client.transact_write_items(TransactItems=claim("shop/n-6", "shop#key#k-6"))

        # Then the failed item's reason carries the item as it was, only when asked for
        assert asked.value.response["CancellationReasons"] == [
            {"Code": "None"},
            {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed", "Item": taken},
        ]
        assert [set(r) for r in not_asked.value.response["CancellationReasons"]] == [{"Code"}, {"Code", "Message"}]


def test_a_callers_second_and_day_hold_their_limits_under_concurrent_environments(tmp_path: Path) -> None:
    """Four environments' quota stores race on one caller's item (``notifications.quotas``): the conditional updates
    let exactly the limit through, each second and for the day. A failed update returns the item it failed on, so
    every wrong guess about the second costs one more update, and nothing reads the item."""
    with dynamodb(tmp_path) as client:
        environments = [DynamoCounterStore(aws_resources.QUOTA_TABLE, client) for _ in range(4)]
        made: list[str] = []
        client.meta.events.register("before-call.dynamodb", lambda model, **_: made.append(model.name))

        def burst(second: int, requests: int) -> Counter[Full | None]:
            count = Count("caller#c-a#0", 25, 86400, second=second, second_limit=10)
            with ThreadPoolExecutor(max_workers=16) as pool:
                outcomes = pool.map(lambda i: environments[i % 4].take([count])[0], range(requests))
                return Counter(outcomes)

        assert burst(100, 30) == {None: 10, Full.SECOND: 20}
        assert burst(101, 30) == {None: 10, Full.SECOND: 20}
        assert burst(102, 30) == {None: 5, Full.WINDOW: 25}
        assert set(made) == {"UpdateItem"}
        item = client.get_item(TableName=aws_resources.QUOTA_TABLE, Key={"counter": {"S": "caller#c-a#0"}})["Item"]
        assert (item["count"]["N"], item["second"]["N"], item["second_count"]["N"]) == ("25", "102", "5")
