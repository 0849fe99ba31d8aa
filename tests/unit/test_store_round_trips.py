"""Store round trips per request and per delivery, counted by a botocore event hook on the functions' own client.

Ingest: one claim and one completion for idempotency and status, whatever the number of channels (a client's own
idempotency key rides in the same transactions), plus the quota check. A delivery: the send's claim and its outcome,
two writes. The store is in-process moto DynamoDB through the same boto3 client the functions use.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import ingest_handler
import pytest

from devstack.apigw import http_api_event, http_result
from devstack.aws_resources import QUOTA_TABLE, STATUS_TABLE, SUPPRESSION_TABLE
from devstack.lambda_context import LocalLambdaContext
from notifications import aws, delivery
from notifications.channels.base import Receipt
from notifications.contracts.envelopes import ChannelMessage
from notifications.contracts.keys import NotificationKey
from notifications.registry import Channel, customer_addressed
from notifications.runtime import ingest
from notifications.status import Claim, DynamoSendClaims, DynamoStatusView, StatusTable
from tests.channel_support import build_sender, channel_message, message_record, sender_settings
from tests.support import SAMPLE_REQUEST, DynamoStatus, MemoryPublisher, caller_id, sample_request


class Calls:
    """DynamoDB operations made through one client, as (operation, table) pairs."""

    def __init__(self) -> None:
        self.made: list[tuple[str, str]] = []

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        table = params.get("TableName") or next(iter(params.get("RequestItems", {})), "")
        if model.name == "TransactWriteItems":
            table = "+".join(sorted({next(iter(item.values()))["TableName"] for item in params["TransactItems"]}))
        self.made.append((model.name, table))

    def on(self, *tables: str) -> list[str]:
        return [operation for operation, table in self.made if any(t in table for t in tables)]


@pytest.fixture
def calls(moto_aws) -> Iterator[Calls]:
    counter = Calls()
    client = aws.client("dynamodb")
    client.meta.events.register("before-parameter-build.dynamodb", counter)
    yield counter
    client.meta.events.unregister("before-parameter-build.dynamodb", counter)


@pytest.fixture
def publisher(moto_aws, monkeypatch: pytest.MonkeyPatch) -> MemoryPublisher:
    fake = MemoryPublisher()
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: fake)
    return fake


def post(body: dict[str, Any], **headers: str) -> int:
    event = http_api_event(
        "POST", "/v1/notifications", body=json.dumps(body), headers={"content-type": "application/json", **headers}
    )
    return http_result(ingest_handler.handler(event, LocalLambdaContext("ingest"))).status


@pytest.mark.parametrize("channels", [["email"], [channel.value for channel in Channel]])
def test_a_new_notification_costs_two_store_round_trips_whatever_its_channels(publisher, calls, channels):
    # Given a purchase for one or for every channel
    body = sample_request(channels=channels)
    post(sample_request())  # clients and tables warm
    calls.made.clear()

    # When the shop posts it
    assert post(body) == 202

    # Then idempotency and status took one claim and one completion, and the quota check one update of the
    # caller's item (its second and its day), then one per recipient address (sent at once: a second round trip)
    assert calls.on(STATUS_TABLE, "idempotency") == ["PutItem", "UpdateItem"]
    addressed = {field for channel, field in customer_addressed().items() if channel.value in channels}
    assert calls.on(QUOTA_TABLE) == ["UpdateItem"] * (1 + len(addressed))
    # And GET answers at once (no window without status), each channel accepted
    event = http_api_event("GET", f"/v1/notifications/{body['id']}")
    answer = http_result(ingest_handler.handler(event, LocalLambdaContext("ingest")))
    assert answer.status == 200
    assert {c["channel"]: c["state"] for c in answer.json()["channels"]} == dict.fromkeys(channels, "accepted")


def test_a_client_key_rides_in_the_same_two_round_trips(publisher, calls):
    post(sample_request())
    calls.made.clear()

    # When the shop posts with its own idempotency key
    assert post(sample_request(), **{"idempotency-key": f"order-{uuid.uuid4()}"}) == 202

    # Then the key's record and the notification's item were written together, twice
    assert calls.on(STATUS_TABLE, "idempotency") == ["TransactWriteItems", "TransactWriteItems"]


def test_a_replay_reads_nothing_more_and_publishes_nothing(publisher, calls):
    body = sample_request()
    assert post(body) == 202
    calls.made.clear()

    # When the client retries
    assert post(body) == 202

    # Then the refused claim answered the stored 202 by itself: one call, nothing published again
    assert calls.on(STATUS_TABLE, "idempotency") == ["PutItem"]
    assert len(publisher.records) == 1


class Provider:
    channel = Channel("email")

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, message: ChannelMessage) -> Receipt:
        self.sent.append(message.delivery_key)
        return Receipt(provider_message_id=f"p-{len(self.sent)}")


def test_a_delivery_costs_two_store_writes_and_a_redelivery_one(moto_aws, calls, monkeypatch):
    import sender_handler

    # Given the email sender on the functions' own DynamoDB client
    provider = Provider()
    service = delivery.DeliveryService(
        settings=sender_settings(Channel.EMAIL),
        sender=provider,
        status=DynamoSendClaims(StatusTable(STATUS_TABLE, aws.client("dynamodb"))),
        publisher=MemoryPublisher(),
    )
    message = channel_message(Channel.EMAIL)
    from devstack.msk_events import build_event
    from tests.channel_support import CLUSTER_ARN

    monkeypatch.setattr(sender_handler, "delivery_runtime", lambda: service)

    def invoke() -> dict[str, Any]:
        event = build_event([message_record(message, 1)], bootstrap_servers="b:9098", event_source_arn=CLUSTER_ARN)
        return sender_handler.handler(event, LocalLambdaContext("email-sender"))

    # When a record is delivered, then redelivered
    assert invoke() == {"batchItemFailures": []}
    first = list(calls.made)
    calls.made.clear()
    assert invoke() == {"batchItemFailures": []}

    # Then the delivery wrote twice (claim, sent) and read nothing; the redelivery's refused claim was all
    assert Counter(first) == Counter({("UpdateItem", STATUS_TABLE): 2})
    assert calls.made == [("UpdateItem", STATUS_TABLE)]
    assert len(provider.sent) == 1


def test_a_claim_blocks_a_second_attempt_until_its_lease_lapses(moto_aws):
    ddb = moto_aws.client("dynamodb")
    now = [1_800_000_000.0]
    from datetime import UTC, datetime

    store = DynamoStatus(StatusTable(STATUS_TABLE, ddb, clock=lambda: datetime.fromtimestamp(now[0], UTC)))
    key = NotificationKey(caller_id(), uuid.uuid4())

    assert store.claim_send(key, Channel.EMAIL, 30).outcome is Claim.CLAIMED
    # A second attempt while the first holds the lease: in flight
    assert store.claim_send(key, Channel.EMAIL, 30).outcome is Claim.IN_FLIGHT
    # The first crashed: after its lease the send can be claimed again
    now[0] += 31
    assert store.claim_send(key, Channel.EMAIL, 30).outcome is Claim.CLAIMED
    # Released (deferred before its turn): claimable at once, and not counted as an attempt
    store.release(key, Channel.EMAIL)
    assert store.claim_send(key, Channel.EMAIL, 30).outcome is Claim.CLAIMED
    store.record_sent(key, Channel.EMAIL, "ses-1")
    sent = store.claim_send(key, Channel.EMAIL, 30)
    assert (sent.outcome, sent.provider_message_id) == (Claim.ALREADY_SENT, "ses-1")
    view = store.get(key)
    assert view is not None
    [email] = view.channels
    assert (email.state.value, email.attempts) == ("sent", 2)


def test_feedback_whose_condition_fails_decides_on_the_row_the_failure_returns(moto_aws, calls):
    from notifications.contracts.status_view import DeliveryState
    from notifications.feedback import Feedback
    from notifications.feedback_service import Applied

    # Given an email's row with its send recorded
    store = DynamoStatus(StatusTable(STATUS_TABLE, aws.client("dynamodb")))
    key = NotificationKey(caller_id(), uuid.uuid4())
    assert store.claim_send(key, Channel.EMAIL, 30).outcome is Claim.CLAIMED
    store.record_sent(key, Channel.EMAIL, "ses-1")

    def feedback(state: DeliveryState, feedback_id: str, message_id: str = "ses-1") -> Applied:
        return store.record_feedback(
            key, Channel.EMAIL, Feedback("ses", message_id, state, datetime.now(UTC), feedback_id=feedback_id)
        )

    # When a complaint, the same complaint again, an earlier delivery and another message's event arrive
    calls.made.clear()
    assert feedback(DeliveryState.COMPLAINED, "f-1") is Applied.APPLIED
    assert feedback(DeliveryState.COMPLAINED, "f-1") is Applied.DUPLICATE
    assert feedback(DeliveryState.DELIVERED, "f-2") is Applied.RECORDED
    assert feedback(DeliveryState.DELIVERED, "f-3", message_id="ses-other") is Applied.UNKNOWN

    # Then each failed condition answered with the row (ReturnValuesOnConditionCheckFailure): writes, no read
    assert calls.made == [("UpdateItem", STATUS_TABLE)] * 5


def stubbed_writes(*answers: tuple[str, bool]) -> tuple[Any, Any]:
    """A DynamoDB client answering exactly these writes, in order: success, or ConditionalCheckFailedException
    without ``Item`` (what AWS answers with ALL_OLD when there is no item: API_UpdateItem.html,
    ReturnValuesOnConditionCheckFailure). Nothing else is stubbed: a read fails the test."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("dynamodb", region_name="eu-central-1", aws_access_key_id="t", aws_secret_access_key="t")
    stubber = Stubber(client)
    for operation, succeeds in answers:
        if succeeds:
            stubber.add_response(operation, {})
        else:
            stubber.add_client_error(
                operation,
                service_error_code="ConditionalCheckFailedException",
                service_message="The conditional request failed",
                http_status_code=400,
            )
    return client, stubber


def test_a_failed_condition_without_an_item_is_answered_without_a_read():
    from notifications.contracts.status_view import DeliveryState
    from notifications.feedback import Feedback
    from notifications.feedback_service import Applied, DynamoFeedbackStatus
    from notifications.ledger import DynamoLedger
    from notifications.quotas import Count, DynamoCounterStore

    key = NotificationKey(caller_id(), uuid.uuid4())
    client, stubber = stubbed_writes(
        ("put_item", False),  # the ledger's claim: nothing to replay, so the request is in flight (client retries)
        ("update_item", False),  # the send's claim: not this attempt's to make (in flight)
        ("update_item", False),  # provider feedback: no row of ours holds the message id
        # a caller's counter gone where the environment expected its second: counted as a new second
        ("update_item", True),
        ("update_item", False),
        ("update_item", True),
    )
    with stubber:
        table = StatusTable(STATUS_TABLE, client)
        claimed = DynamoLedger(table, "idempotency", key_ttl_seconds=60).claim(key, None, "digest", 30, None)
        assert claimed.notification is not None and not claimed.taken
        assert (claimed.notification.digest, claimed.notification.accepted) == ("digest", None)
        assert DynamoSendClaims(table).claim_send(key, Channel.EMAIL, 30).outcome is Claim.IN_FLIGHT
        applied = DynamoFeedbackStatus(table).record_feedback(
            key, Channel.EMAIL, Feedback("ses", "ses-1", DeliveryState.DELIVERED, datetime.now(UTC), feedback_id="f-1")
        )
        assert applied is Applied.UNKNOWN
        counters = DynamoCounterStore(QUOTA_TABLE, client)
        count = Count("caller#c-a#0", 25, 86400, second=100, second_limit=10)
        assert counters.take([count]) == [None]
        assert counters.take([count]) == [None]
        stubber.assert_no_pending_responses()


def test_a_batch_of_emails_reads_the_suppression_list_once(moto_aws, calls, monkeypatch):
    import sender_handler

    from devstack.msk_events import build_event
    from notifications.suppression import DynamoSuppressionList
    from tests.channel_support import CLUSTER_ARN

    # Given the email sender as its function builds it (SES and the suppression list on moto), one address of five
    # on the suppression list
    sender = build_sender(Channel.EMAIL)
    addresses = [f"buyer{i}@example.com" for i in range(5)]
    DynamoSuppressionList(SUPPRESSION_TABLE, aws.client("dynamodb")).suppress(
        addresses[3].upper(), reason="bounce", at=datetime.now(UTC)
    )
    calls.made.clear()
    service = delivery.DeliveryService(
        settings=sender_settings(Channel.EMAIL),
        sender=sender,
        status=DynamoSendClaims(StatusTable(STATUS_TABLE, aws.client("dynamodb"))),
        publisher=MemoryPublisher(),
    )
    monkeypatch.setattr(sender_handler, "delivery_runtime", lambda: service)
    decoded: list[int] = []
    decode = delivery.decode_envelope
    monkeypatch.setattr(
        delivery, "decode_envelope", lambda record, *a: decoded.append(record.offset) or decode(record, *a)
    )
    messages = [
        channel_message(Channel.EMAIL, customer={**SAMPLE_REQUEST["customer"], "email": address})
        for address in addresses
    ]
    records = [message_record(message, offset) for offset, message in enumerate(messages)]

    # When one batch of five emails is delivered
    event = build_event(records, bootstrap_servers="b:9098", event_source_arn=CLUSTER_ARN)
    assert sender_handler.handler(event, LocalLambdaContext("email-sender")) == {"batchItemFailures": []}

    # Then the suppression list was read once for the whole batch (not once per email), and the suppressed
    # address was not mailed
    assert calls.on(SUPPRESSION_TABLE) == ["BatchGetItem"]
    assert sorted(decoded) == list(range(5)), "each record is decoded once, for the batch and its send"
    store = DynamoStatusView(StatusTable(STATUS_TABLE, aws.client("dynamodb")))
    views = [store.get(message.key) for message in messages]
    assert [(view.channels[0].state.value, view.channels[0].last_error) for view in views if view] == [
        ("sent", None),
        ("sent", None),
        ("sent", None),
        ("failed", "suppressed"),
        ("sent", None),
    ]


def test_the_suppression_list_is_read_in_batches_of_one_hundred(moto_aws, calls):
    from notifications.suppression import DynamoSuppressionList

    # Given 150 addresses, two of them suppressed (written in another case)
    suppressions = DynamoSuppressionList(SUPPRESSION_TABLE, aws.client("dynamodb"))
    addresses = [f"buyer{i}@example.com" for i in range(150)]
    for address in (addresses[7], addresses[120]):
        suppressions.suppress(address.upper(), reason="complaint", at=datetime.now(UTC))
    calls.made.clear()

    # When the list is asked about all of them at once
    found = suppressions.suppressed(addresses)

    # Then two BatchGetItem calls (at most 100 keys each) find exactly those two
    assert found == {addresses[7], addresses[120]}
    assert calls.on(SUPPRESSION_TABLE) == ["BatchGetItem", "BatchGetItem"]


class Unprocessing:
    """A DynamoDB client whose BatchGetItem leaves every key unprocessed ``times`` times, then answers."""

    def __init__(self, times: int, found: str) -> None:
        self.times, self.found, self.asked = times, found, 0

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.asked += 1
        if self.asked <= self.times:
            return {"Responses": {}, "UnprocessedKeys": RequestItems}
        [(table, request)] = RequestItems.items()
        keys = {key["address_hash"]["S"] for key in request["Keys"]}
        return {"Responses": {table: [{"address_hash": {"S": self.found}}] if self.found in keys else []}}


def test_keys_left_unprocessed_are_asked_again_and_never_taken_for_not_suppressed(monkeypatch):
    """BatchGetItem may return keys as UnprocessedKeys
    (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html)."""
    from notifications import suppression

    monkeypatch.setattr(suppression.time, "sleep", lambda seconds: None)
    address = "late@example.com"

    # Given a store that leaves the keys unprocessed twice, they are asked again and the answer is complete
    twice = Unprocessing(2, suppression.address_key(address))
    assert suppression.DynamoSuppressionList("t", twice).suppressed([address, "other@example.com"]) == {address}
    assert twice.asked == 3

    # And a store that never gets to them is an error, not "nobody is suppressed"
    never = Unprocessing(10**6, suppression.address_key(address))
    with pytest.raises(suppression.SuppressionListError):
        suppression.DynamoSuppressionList("t", never).suppressed([address])
    assert never.asked == 5


class Broken(Provider):
    """A provider adapter with a bug: it raises something that is neither transient nor permanent."""

    def send(self, message: ChannelMessage) -> Receipt:
        raise RuntimeError("a bug in the adapter")


def test_an_unexpected_error_ends_the_claim_so_the_redelivery_is_sent(moto_aws, monkeypatch):
    import sender_handler

    from devstack.msk_events import build_event
    from tests.channel_support import CLUSTER_ARN

    status = DynamoSendClaims(StatusTable(STATUS_TABLE, aws.client("dynamodb")))
    message = channel_message(Channel.EMAIL)
    event = build_event([message_record(message, 1)], bootstrap_servers="b:9098", event_source_arn=CLUSTER_ARN)

    def invoke(provider: Provider) -> dict[str, Any]:
        service = delivery.DeliveryService(
            settings=sender_settings(Channel.EMAIL), sender=provider, status=status, publisher=MemoryPublisher()
        )
        monkeypatch.setattr(sender_handler, "delivery_runtime", lambda: service)
        return sender_handler.handler(event, LocalLambdaContext("email-sender"))

    # Given a send that failed with an unexpected error (the record is reported failed, to be redelivered)
    assert invoke(Broken()) == {
        "batchItemFailures": [{"itemIdentifier": {"partition": "notifications.email-0", "offset": 1}}]
    }

    # When the event-source mapping redelivers it to a working sender
    provider = Provider()
    assert invoke(provider) == {"batchItemFailures": []}

    # Then it is sent at once: the failed attempt did not keep its claim
    assert len(provider.sent) == 1


def test_a_long_outage_keeps_the_status_row_bounded_at_one_write_per_event(moto_aws, calls):
    # Given a channel whose send fails transiently again and again (an outage of hours: a few hundred events)
    store = DynamoStatus(StatusTable(STATUS_TABLE, aws.client("dynamodb")))
    key = NotificationKey(caller_id(), uuid.uuid4())
    reason = "provider timed out " + "x" * 480  # the longest reason a row keeps (500 characters)

    def row_size() -> int:
        item_key = {"notification_id": {"S": str(key)}, "channel": {"S": "sms"}}
        item = aws.client("dynamodb").get_item(TableName=STATUS_TABLE, Key=item_key)["Item"]
        return len(json.dumps(item))

    for _ in range(30):
        store.record_failure(key, Channel.SMS, reason, final=False)
    after_30 = row_size()
    calls.made.clear()
    for _ in range(330):
        store.record_failure(key, Channel.SMS, reason, final=False)

    # Then each event cost one write and nothing was read
    assert calls.made == [("UpdateItem", STATUS_TABLE)] * 330
    # And the row stopped growing once it held its first event and the last 20 (DynamoDB's item limit is 400 KB:
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html)
    assert after_30 < 20_000
    assert row_size() - after_30 < 10  # the event counter's digits, and a timestamp's microseconds at most
    view = store.get(key)
    assert view is not None
    [sms] = view.channels
    assert (len(sms.history), sms.history_dropped) == (21, 360 - 21)
