"""Erasure (``notifications-erase``): one caller's customer's status items and idempotency records are gone,
everyone else's stay, another caller's customer of the same id included. The items are written by the real ingest
and email sender paths on moto's DynamoDB.

DynamoDB Scan reads the whole table whatever the filter (the tool's documented cost):
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html#Scan.ReadConsumption
"""

from __future__ import annotations

import io
import json
from typing import Any
from uuid import UUID

import ingest_handler
import pytest

from devstack import aws_resources
from devstack.apigw import LOCAL_CALLER, caller_arn, http_api_event, http_result
from devstack.lambda_context import LocalLambdaContext
from devstack.msk_events import build_event
from notifications import channels
from notifications.callers import Caller
from notifications.contracts.envelopes import NotificationRequested, channel_messages
from notifications.contracts.keys import NotificationKey
from notifications.delivery import DeliveryService
from notifications.registry import Channel
from notifications.retention import STATUS_CUSTOMER_ATTRIBUTE
from notifications.runtime import ingest
from notifications.status import Claim, DynamoSendClaims, StatusTable
from ops import erase
from tests.channel_support import CLUSTER_ARN, message_record, sender_environment, sender_settings
from tests.support import MemoryPublisher, sample_request

STATUS, IDEMPOTENCY = aws_resources.STATUS_TABLE, aws_resources.IDEMPOTENCY_TABLE
SHOP = Caller.iam(caller_arn(LOCAL_CALLER)).id  # the caller id the ingest function gives the local API's requests


@pytest.fixture
def published(moto_aws, monkeypatch: pytest.MonkeyPatch) -> MemoryPublisher:
    fake = MemoryPublisher()
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: fake)
    return fake


def accept(
    customer_id: str, key: str | None = None, *, caller: str = LOCAL_CALLER, notification_id: str | None = None
) -> str:
    """POST a purchase for ``customer_id`` (email and SMS) as ``caller`` (a local API caller name) through the
    ingest function; its notification id."""
    body = sample_request(channels=["email", "sms"])
    body["customer"]["id"] = customer_id
    if notification_id is not None:
        body["id"] = notification_id
    headers = {"content-type": "application/json"} | ({"idempotency-key": key} if key else {})
    event = http_api_event("POST", "/v1/notifications", body=json.dumps(body), headers=headers, caller=caller)
    assert http_result(ingest_handler.handler(event, LocalLambdaContext("ingest"))).status == 202
    return str(body["id"])


def send_emails(session, published: MemoryPublisher, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deliver every published request's email through the email sender function (moto SES)."""
    import sender_handler

    ddb = session.client("dynamodb")
    env = sender_environment(Channel.EMAIL)
    settings = sender_settings(Channel.EMAIL)
    service = DeliveryService(
        settings=settings,
        sender=channels.create_sender(settings, env),
        status=DynamoSendClaims(StatusTable(STATUS, ddb)),
        publisher=MemoryPublisher(),
    )
    monkeypatch.setattr(sender_handler, "delivery_runtime", lambda: service)
    messages = [
        message
        for record in published.records
        for message in channel_messages(NotificationRequested.model_validate_json(record.value))
        if message.channel is Channel.EMAIL
    ]
    records = [message_record(m, offset) for offset, m in enumerate(messages)]
    event = build_event(records, bootstrap_servers="b:9098", event_source_arn=CLUSTER_ARN)
    assert sender_handler.handler(event, LocalLambdaContext("email-sender")) == {"batchItemFailures": []}


def names(key: str, notification_ids: list[str]) -> bool:
    """Whether a status key (``<caller id>/<notification id>``) is one of these notifications."""
    return key.rsplit("/", 1)[-1] in notification_ids


def items_naming(ddb, notification_ids: list[str]) -> dict[str, list[Any]]:
    status = [i for i in ddb.scan(TableName=STATUS)["Items"] if names(i["notification_id"]["S"], notification_ids)]
    idempotency = [
        i
        for i in ddb.scan(TableName=IDEMPOTENCY)["Items"]
        if any(
            n in i.get("data", {}).get("S", "") + i.get("notification_id", {}).get("S", "") for n in notification_ids
        )
    ]
    return {"status": status, "idempotency": idempotency}


@pytest.fixture
def two_customers(moto_aws, published, monkeypatch) -> dict[str, list[str]]:
    """c-42 with two purchases (one with the shop's own idempotency key), c-7 with one: accepted (ingest records the
    customer on the notification's item), emails sent."""
    ids = {"c-42": [accept("c-42"), accept("c-42", key="order-1")], "c-7": [accept("c-7", key="order-2")]}
    send_emails(moto_aws, published, monkeypatch)
    return ids


def run(ddb, *argv: str, caller: str = SHOP) -> tuple[int, str]:
    out = io.StringIO()
    return erase.main(["--caller", caller, "--customer-id", *argv], out=out, ddb=ddb), out.getvalue()


def test_the_erasure_command_leaves_no_item_for_that_customer(moto_aws, two_customers):
    ddb = moto_aws.client("dynamodb")
    erased, kept = two_customers["c-42"], two_customers["c-7"]
    # Given status items (each notification's own and its email's) and the record of the shop's idempotency key
    before = items_naming(ddb, erased)
    assert len(before["status"]) == 4 and len(before["idempotency"]) == 1
    others = items_naming(ddb, kept)

    # When the operator erases c-42
    code, output = run(ddb, "c-42")

    # Then nothing names c-42's notifications any more, and c-7's items are untouched
    assert code == 0, output
    assert items_naming(ddb, erased) == {"status": [], "idempotency": []}
    assert not [i for i in ddb.scan(TableName=STATUS)["Items"] if i.get(STATUS_CUSTOMER_ATTRIBUTE) == {"S": "c-42"}]
    assert items_naming(ddb, kept) == others
    assert output.splitlines()[-1] == "deleted 4 status item(s) and 1 idempotency record(s) of 2 notification(s)"
    assert {line.split()[-1].rsplit("/", 1)[-1] for line in output.splitlines()[:-1]} == set(erased)

    # And a second run finds nothing
    assert run(ddb, "c-42")[1].splitlines()[-1].endswith("of 0 notification(s)")


def test_a_dry_run_deletes_nothing(moto_aws, two_customers):
    ddb = moto_aws.client("dynamodb")
    before = items_naming(ddb, two_customers["c-42"])

    code, output = run(ddb, "c-42", "--dry-run")

    assert code == 0
    assert output.splitlines()[-1] == "would delete 4 status item(s) and 1 idempotency record(s) of 2 notification(s)"
    assert items_naming(ddb, two_customers["c-42"]) == before


def test_it_needs_the_table_names(moto_aws, monkeypatch, capsys):
    monkeypatch.delenv("STATUS_TABLE_NAME")
    argv = ["--caller", SHOP, "--customer-id", "c-42"]
    assert erase.main(argv, out=io.StringIO(), ddb=moto_aws.client("dynamodb")) == 2
    assert "--status-table" in capsys.readouterr().err


def test_the_console_script_is_installed():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["notifications-erase"] == "ops.erase:main"


SHOP_A, SHOP_B = "shop-a", "shop-b"
CALLER_A, CALLER_B = (Caller.iam(caller_arn(name)).id for name in (SHOP_A, SHOP_B))


def items_of(ddb, caller: str) -> dict[str, list[Any]]:
    """Every status and idempotency item in ``caller``'s namespace, in a stable order."""
    status = [i for i in ddb.scan(TableName=STATUS)["Items"] if i["notification_id"]["S"].startswith(f"{caller}/")]
    idempotency = [i for i in ddb.scan(TableName=IDEMPOTENCY)["Items"] if i["id"]["S"].startswith(f"{caller}#")]
    return {
        "status": sorted(status, key=lambda i: (i["notification_id"]["S"], i["channel"]["S"])),
        "idempotency": sorted(idempotency, key=lambda i: i["id"]["S"]),
    }


@pytest.fixture
def two_shops(moto_aws, published, monkeypatch) -> str:
    """Shops A and B each have a customer ``42`` with a delivered email, of the same notification id (ids are per
    caller), each with the shop's own idempotency key; the notification id."""
    notification_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    for shop in (SHOP_A, SHOP_B):
        accept("42", key="order-1", caller=shop, notification_id=notification_id)
    send_emails(moto_aws, published, monkeypatch)
    return notification_id


def test_erasure_removes_only_the_callers_customer(moto_aws, two_shops):
    ddb = moto_aws.client("dynamodb")
    # Given both shops' items: the notification's item, its email's row (the send's claim), the key's record
    a_before, b_before = items_of(ddb, CALLER_A), items_of(ddb, CALLER_B)
    assert [len(a_before["status"]), len(a_before["idempotency"])] == [2, 1]
    assert [len(b_before["status"]), len(b_before["idempotency"])] == [2, 1]

    # When the operator erases shop A's customer 42
    code, output = run(ddb, "42", caller=CALLER_A)

    # Then A's items are gone and B's are there, byte for byte
    assert code == 0, output
    assert items_of(ddb, CALLER_A) == {"status": [], "idempotency": []}
    assert items_of(ddb, CALLER_B) == b_before
    assert output.splitlines() == [
        f"deleted notification {CALLER_A}/{two_shops}",
        "deleted 2 status item(s) and 1 idempotency record(s) of 1 notification(s)",
    ]

    # And a redelivery of B's email record is still deduplicated by its claim row
    status = DynamoSendClaims(StatusTable(STATUS, ddb))
    claim = status.claim_send(NotificationKey(CALLER_B, UUID(two_shops)), Channel.EMAIL, lease_seconds=30)
    assert claim.outcome is Claim.ALREADY_SENT
    assert items_of(ddb, CALLER_B) == b_before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--customer-id", "42"], "--caller"),
        (["--caller", "shop-a", "--customer-id", "42"], "c-"),
    ],
)
def test_it_needs_the_caller_id(moto_aws, capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        erase.main(argv, out=io.StringIO(), ddb=moto_aws.client("dynamodb"))
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
