"""The ingest HTTP API through its Lambda handler, on moto's DynamoDB with an in-memory publisher."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import ingest_handler
import kafka
import pytest

from devstack.apigw import HttpResult, http_api_event, http_result
from devstack.aws_resources import IDEMPOTENCY_TABLE, STATUS_TABLE
from devstack.lambda_context import LocalLambdaContext
from notifications.contracts.keys import NotificationKey
from notifications.kafka.producer import OutgoingRecord
from notifications.ledger import DynamoLedger
from notifications.registry import Channel
from notifications.runtime import ingest
from notifications.settings import ingest_settings
from notifications.status import NOTIFICATION_ITEM, Claim, DynamoSendClaims, StatusTable
from tests.support import DynamoStatus, MemoryPublisher, caller_id, sample_request

REQUESTED = "notifications.requested"


def post(body: dict[str, Any] | str, **headers: str) -> HttpResult:
    raw = body if isinstance(body, str) else json.dumps(body)
    event = http_api_event(
        "POST", "/v1/notifications", body=raw, headers={"content-type": "application/json", **headers}
    )
    return http_result(ingest_handler.handler(event, LocalLambdaContext("ingest")))


def get(notification_id: str, **headers: str) -> HttpResult:
    event = http_api_event("GET", f"/v1/notifications/{notification_id}", headers=headers)
    return http_result(ingest_handler.handler(event, LocalLambdaContext("ingest")))


def idempotency_items(session: boto3.Session) -> list[dict[str, Any]]:
    """Ingest's idempotency records: notification items in the status table, client keys' items in their table."""
    ddb = session.client("dynamodb")
    notifications = [i for i in ddb.scan(TableName=STATUS_TABLE)["Items"] if i["channel"]["S"] == NOTIFICATION_ITEM]
    return notifications + ddb.scan(TableName=IDEMPOTENCY_TABLE)["Items"]


@pytest.fixture
def publisher(moto_aws, monkeypatch: pytest.MonkeyPatch) -> MemoryPublisher:
    fake = MemoryPublisher()
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: fake)
    return fake


# ------------------------------------------------------------------------------------------------- accepting


def test_a_valid_request_is_published_then_answered_202(publisher):
    # Given a purchase for three channels
    body = sample_request()

    # When the shop posts it with its own correlation id
    answer = post(body, **{"x-correlation-id": "shop-corr-1"})

    # Then the answer is 202 with the id, the channels, a Location and the correlation id
    assert answer.status == 202, answer.body
    accepted = answer.json()
    assert accepted["id"] == body["id"]
    assert accepted["status"] == "accepted"
    assert accepted["channels"] == ["email", "sms", "slack"]
    assert accepted["correlation_id"] == "shop-corr-1"
    assert answer.headers["location"] == f"/v1/notifications/{body['id']}"
    assert answer.headers["x-correlation-id"] == "shop-corr-1"
    assert "idempotent-replayed" not in answer.headers
    # And exactly one requested record holds it, keyed by notification id, with the correlation id in its headers
    [record] = publisher.on(REQUESTED)
    assert record.key == body["id"].encode()
    assert dict(record.headers)["correlation-id"] == b"shop-corr-1"
    assert dict(record.headers)["schema"] == b"notification.requested/v2"
    envelope = json.loads(record.value)
    assert envelope["schema"] == "notification.requested/v2"
    assert envelope["caller"] == caller_id()
    assert envelope["notification_id"] == body["id"]
    assert envelope["correlation_id"] == "shop-corr-1"
    assert envelope["purchase"]["total"] == "49.90"


def test_channels_default_to_the_customer_addresses(publisher):
    # Given a request without channels, for a customer with an email address only
    body = sample_request(channels=None, customer={"id": "c-7", "name": "Bo", "email": "bo@example.com"})
    del body["channels"]

    # When it is posted
    answer = post(body)

    # Then email is the one channel
    assert answer.status == 202, answer.body
    assert answer.json()["channels"] == ["email"]
    assert json.loads(publisher.records[0].value)["channels"] == ["email"]


def test_push_without_a_push_endpoint_is_422_naming_the_field_and_publishes_nothing(publisher):
    # Given a request for push whose customer has no push endpoint
    body = sample_request(channels=["push"], customer={"id": "c-7", "name": "Bo", "email": "bo@example.com"})

    # When it is posted
    answer = post(body)

    # Then it is refused as a field error naming customer.push_endpoint, and nothing reached Kafka
    assert answer.status == 422, answer.body
    error = answer.json()["error"]
    assert error["code"] == "validation_failed"
    assert any("customer.push_endpoint" in detail["msg"] for detail in error["details"]), error
    assert publisher.records == []


def test_a_push_endpoint_that_is_no_platform_endpoint_arn_is_422_on_that_field(publisher):
    body = sample_request(channels=["push"])
    body["customer"]["push_endpoint"] = "arn:aws:sns:us-east-1:123456789012:orders"  # a topic
    answer = post(body)
    assert answer.status == 422, answer.body
    assert [tuple(d["loc"]) for d in answer.json()["error"]["details"]] == [("customer", "push_endpoint")]
    assert publisher.records == []


def test_a_customer_with_a_push_endpoint_gets_push_by_default(publisher):
    body = sample_request(channels=None)
    del body["channels"]
    answer = post(body)
    assert answer.status == 202, answer.body
    assert "push" in answer.json()["channels"]
    envelope = json.loads(publisher.records[0].value)
    assert envelope["customer"]["push_endpoint"] == body["customer"]["push_endpoint"]


def test_a_correlation_id_is_generated_when_none_or_an_unusable_one_is_sent(publisher):
    # When two requests come without a usable correlation id
    without = post(sample_request())
    too_long = post(sample_request(), **{"x-correlation-id": "c" * 129})

    # Then each gets a fresh UUID, returned and carried to Kafka
    for answer, record in zip((without, too_long), publisher.records, strict=True):
        cid = answer.headers["x-correlation-id"]
        assert str(uuid.UUID(cid)) == cid
        assert answer.json()["correlation_id"] == cid
        assert dict(record.headers)["correlation-id"] == cid.encode()
    assert without.headers["x-correlation-id"] != too_long.headers["x-correlation-id"]


# ---------------------------------------------------------------------------------------------- idempotency


def test_a_replay_answers_the_first_202_and_publishes_nothing_new(publisher):
    # Given an accepted request
    body = sample_request()
    first = post(body, **{"x-correlation-id": "first"})
    assert first.status == 202

    # When the shop retries it (the body id is the key), with another correlation id
    replay = post(body, **{"x-correlation-id": "retry"})

    # Then the answer is the first 202 again, marked as a replay, and Kafka got nothing new
    assert replay.status == 202
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["x-correlation-id"] == "retry"
    assert len(publisher.on(REQUESTED)) == 1


def test_the_idempotency_key_header_wins_over_the_body_id(publisher):
    # Given a request accepted under an explicit key
    first = post(sample_request(), **{"idempotency-key": "order-A-1001"})
    assert first.status == 202

    # When the same payload is retried under the same key but the client regenerated the body id
    other_id = post(sample_request(), **{"idempotency-key": "order-A-1001"})

    # Then the key decides: another payload under a used key is a conflict, and nothing new is published
    assert other_id.status == 409
    assert other_id.json()["error"]["code"] == "idempotency_key_reused"
    assert len(publisher.records) == 1


def test_the_same_id_with_a_different_payload_is_a_conflict(publisher):
    # Given an accepted request
    body = sample_request()
    assert post(body).status == 202

    # When a request reuses its id with another total
    changed = {**body, "purchase": {**body["purchase"], "total": "99.00"}}
    answer = post(changed)

    # Then it is refused as a conflict and nothing new is published
    assert answer.status == 409
    assert answer.json()["error"]["code"] == "notification_id_reused"
    assert answer.headers["x-correlation-id"]
    assert len(publisher.records) == 1


class ReentrantPublisher(MemoryPublisher):
    """Posts the same request again while the first one is still being published (a client retry in flight)."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__()
        self.body = body
        self.concurrent: HttpResult | None = None

    def publish_all(self, records):
        if self.concurrent is None:
            self.concurrent = post(self.body)
        return super().publish_all(records)


def test_a_retry_while_the_first_request_is_in_flight_is_a_conflict(moto_aws, monkeypatch):
    # Given a publisher during whose send the same request arrives again
    body = sample_request()
    publisher = ReentrantPublisher(body)
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: publisher)

    # When the first request is posted
    first = post(body)

    # Then the concurrent one got 409 request_in_flight with Retry-After, the first 202, and one record exists
    assert publisher.concurrent is not None
    assert publisher.concurrent.status == 409
    assert publisher.concurrent.json()["error"]["code"] == "request_in_flight"
    assert int(publisher.concurrent.headers["retry-after"]) > 0
    assert first.status == 202
    assert len(publisher.records) == 1


def test_broker_down_answers_503_leaves_no_record_and_the_retry_goes_through(moto_aws, monkeypatch):
    # Given a broker that acknowledges nothing
    down = MemoryPublisher(fail_topics=[REQUESTED])
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: down)
    body = sample_request()

    # When the shop posts
    answer = post(body, **{"idempotency-key": "retry-me"})

    # Then it is 503 with Retry-After, nothing is published and no idempotency record blocks the key
    assert answer.status == 503
    assert answer.json()["error"]["code"] == "broker_unavailable"
    assert answer.headers["retry-after"] == str(ingest_settings().retry_after_seconds)
    assert down.records == []
    assert idempotency_items(moto_aws) == []
    assert get(body["id"]).status == 404

    # When the broker is back and the shop retries with the same key
    down.fail_topics.clear()
    retry = post(body, **{"idempotency-key": "retry-me"})

    # Then the retry is accepted (not replayed, not a conflict) and published once
    assert retry.status == 202, retry.body
    assert "idempotent-replayed" not in retry.headers
    assert len(down.records) == 1


@pytest.mark.parametrize("table", [STATUS_TABLE, IDEMPOTENCY_TABLE])
def test_idempotency_store_down_answers_503_and_publishes_nothing(publisher, moto_aws, table):
    # Given a table of ingest's idempotency records that does not answer (the client's key is in the second)
    moto_aws.client("dynamodb").delete_table(TableName=table)

    # When the shop posts with its own idempotency key
    answer = post(sample_request(), **{"idempotency-key": "order-A-1001"})

    # Then nothing is accepted: 503 store_unavailable with Retry-After
    assert answer.status == 503
    assert answer.json()["error"]["code"] == "store_unavailable"
    assert int(answer.headers["retry-after"]) > 0
    assert publisher.records == []


class BrokenPublisher(MemoryPublisher):
    def publish_all(self, records):
        raise RuntimeError("a bug, not an outage")


def test_an_unexpected_error_answers_500_json_and_the_retry_goes_through(moto_aws, monkeypatch):
    # Given a publisher with a bug
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: BrokenPublisher())
    body = sample_request()

    # When the shop posts
    answer = post(body)

    # Then the answer is the JSON error contract's 500, and the key is free again
    assert answer.status == 500
    assert answer.json()["error"]["code"] == "internal_error"
    assert "a bug" not in answer.body.decode()
    assert answer.headers["x-correlation-id"]
    assert idempotency_items(moto_aws) == []


def test_a_failed_completion_does_not_unaccept_a_published_notification(publisher, moto_aws, monkeypatch):
    # Given a store that took the claim but fails the second write (the completion)
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("store went away")

    monkeypatch.setattr(DynamoLedger, "complete", fail)

    # When the shop posts
    body = sample_request()
    answer = post(body)

    # Then the notification, durable on Kafka, is still accepted
    assert answer.status == 202
    assert len(publisher.records) == 1
    # And a retry while the claim holds publishes nothing more (409: in flight)
    assert post(body).status == 409
    assert len(publisher.records) == 1


# --------------------------------------------------------------------------------------------------- status


def test_ingest_records_accepted_per_channel_and_get_answers_it(publisher):
    # Given an accepted request for three channels
    body = sample_request()
    assert post(body).status == 202

    # When its status is read
    answer = get(body["id"], **{"x-correlation-id": "read-1"})

    # Then each channel is accepted, with no attempts, no error and no provider message id yet
    assert answer.status == 200, answer.body
    assert answer.headers["x-correlation-id"] == "read-1"
    status = answer.json()
    assert status["id"] == body["id"]
    channels = {c["channel"]: c for c in status["channels"]}
    assert set(channels) == {"email", "sms", "slack"}
    for channel in channels.values():
        assert channel["state"] == "accepted"
        assert channel["attempts"] == 0
        assert channel["last_error"] is None
        assert channel["provider_message_id"] is None


def test_get_shows_what_the_senders_recorded(publisher, moto_aws):
    # Given an accepted request whose email was sent and whose sms failed for good after two attempts
    body = sample_request()
    assert post(body).status == 202
    store = DynamoStatus(StatusTable(STATUS_TABLE, moto_aws.client("dynamodb")))
    nid = NotificationKey(caller_id(), uuid.UUID(body["id"]))
    assert store.claim_send(nid, Channel.EMAIL, 60).outcome is Claim.CLAIMED
    store.record_sent(nid, Channel.EMAIL, "ses-0001")
    store.claim_send(nid, Channel.SMS, 60)
    store.record_failure(nid, Channel.SMS, "throttled", final=False)
    store.claim_send(nid, Channel.SMS, 60)
    store.record_failure(nid, Channel.SMS, "invalid number", final=True)

    # When its status is read
    channels = {c["channel"]: c for c in get(body["id"]).json()["channels"]}

    # Then each channel's state, attempts, last error and provider message id are there
    assert channels["email"] | {"updated_at": None, "history": None} == {
        "channel": "email",
        "state": "sent",
        "attempts": 1,
        "last_error": None,
        "provider_message_id": "ses-0001",
        "updated_at": None,
        "history": None,
        "history_dropped": 0,
    }
    assert (channels["sms"]["state"], channels["sms"]["attempts"]) == ("failed", 2)
    assert channels["sms"]["last_error"] == "invalid number"
    assert channels["slack"]["state"] == "accepted"
    # And each channel's history, oldest first: accepted at the 202, then what the senders recorded
    events = {name: [(e["event"], e["reason"]) for e in c["history"]] for name, c in channels.items()}
    assert events == {
        "email": [("accepted", None), ("sent", None)],
        "sms": [("accepted", None), ("attempt_failed", "throttled"), ("failed", "invalid number")],
        "slack": [("accepted", None)],
    }
    times = [e["at"] for e in channels["sms"]["history"]]
    assert times == sorted(times)


def test_a_failure_recorded_after_a_failed_claim_leaves_a_well_formed_row_and_get_answers_200(publisher, moto_aws):
    # Given an accepted request whose sms claim never reached the store (it was down: the claim wrote nothing),
    # so the sender deferred the record and recorded the transient failure on a row that did not exist yet
    body = sample_request()
    assert post(body).status == 202
    ddb = moto_aws.client("dynamodb")
    nid = NotificationKey(caller_id(), uuid.UUID(body["id"]))
    DynamoSendClaims(StatusTable(STATUS_TABLE, ddb)).record_failure(
        nid, Channel.SMS, "status store unavailable", final=False
    )

    # Then the row has its state (still accepted: no attempt reached the provider)
    key = {"notification_id": {"S": str(nid)}, "channel": {"S": "sms"}}
    assert ddb.get_item(TableName=STATUS_TABLE, Key=key)["Item"]["state"] == {"S": "accepted"}
    # And GET answers 200 with the failure in the channel's history
    answer = get(body["id"])
    assert answer.status == 200, answer.body
    sms = next(c for c in answer.json()["channels"] if c["channel"] == "sms")
    assert (sms["state"], sms["attempts"], sms["last_error"]) == ("accepted", 0, "status store unavailable")
    assert [e["event"] for e in sms["history"]] == ["accepted", "attempt_failed"]


def test_get_reads_a_channel_row_written_without_state_as_accepted(publisher, moto_aws):
    # Given a channel row left without a state (written so before the senders set one on every row)
    body = sample_request()
    assert post(body).status == 202
    nid = NotificationKey(caller_id(), uuid.UUID(body["id"]))
    row = {"notification_id": {"S": str(nid)}, "channel": {"S": "sms"}, "last_error": {"S": "timeout"}}
    moto_aws.client("dynamodb").put_item(TableName=STATUS_TABLE, Item=row)

    # When its status is read, then it is answered, the channel accepted
    answer = get(body["id"])
    assert answer.status == 200, answer.body
    sms = next(c for c in answer.json()["channels"] if c["channel"] == "sms")
    assert (sms["state"], sms["last_error"]) == ("accepted", "timeout")


def test_get_shows_how_many_history_events_a_long_outage_dropped(publisher, moto_aws):
    # Given an accepted request whose sms failed transiently 100 times (a long outage), then was sent
    body = sample_request()
    assert post(body).status == 202
    store = DynamoStatus(StatusTable(STATUS_TABLE, moto_aws.client("dynamodb")))
    nid = NotificationKey(caller_id(), uuid.UUID(body["id"]))
    for attempt in range(1, 101):
        store.record_failure(nid, Channel.SMS, f"timeout {attempt}", final=False)
    store.record_sent(nid, Channel.SMS, "sns-1")

    # When its status is read
    sms = next(c for c in get(body["id"]).json()["channels"] if c["channel"] == "sms")

    # Then the history holds the 202, the first event and the last 20, and says how many events between were dropped
    events = [(e["event"], e["reason"]) for e in sms["history"]]
    assert events[:2] == [("accepted", None), ("attempt_failed", "timeout 1")]
    assert events[2:] == [("attempt_failed", f"timeout {n}") for n in range(82, 101)] + [("sent", None)]
    assert sms["history_dropped"] == 101 - 1 - 20


def test_get_answers_404_for_an_unknown_id_and_400_for_a_non_uuid(publisher):
    unknown = get(str(uuid.uuid4()))
    assert unknown.status == 404
    assert unknown.json()["error"]["code"] == "not_found"
    malformed = get("A-1001")
    assert malformed.status == 400
    assert malformed.json()["error"]["code"] == "invalid_id"


def test_get_answers_503_when_the_status_store_is_down(publisher, moto_aws):
    moto_aws.client("dynamodb").delete_table(TableName=STATUS_TABLE)
    answer = get(str(uuid.uuid4()))
    assert answer.status == 503
    assert answer.json()["error"]["code"] == "store_unavailable"
    assert int(answer.headers["retry-after"]) > 0


# ------------------------------------------------------------------------------------- once per environment


class FakeFuture:
    def get(self, timeout: float | None = None) -> object:
        return object()


class CountingProducer:
    """Stands in for kafka.KafkaProducer: counts how often it is built and what it sends."""

    built = 0
    sent: list[OutgoingRecord]

    def __init__(self, **config: Any) -> None:
        type(self).built += 1
        assert (config["acks"], config["enable_idempotence"], config["linger_ms"]) == ("all", True, 0)
        self.sent = []

    def send(self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]) -> FakeFuture:
        self.sent.append(OutgoingRecord(topic, key, value, tuple(headers)))
        return FakeFuture()


def test_producer_and_aws_clients_are_created_once_per_execution_environment(moto_aws, monkeypatch):
    # Given a fresh execution environment whose factories count what they build
    monkeypatch.setattr(kafka, "KafkaProducer", CountingProducer)
    monkeypatch.setattr(CountingProducer, "built", 0)
    clients: list[str] = []
    real_client = boto3.session.Session.client

    def counting_client(self, service_name, *args, **kwargs):
        clients.append(service_name)
        return real_client(self, service_name, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", counting_client)

    # When two notifications are posted and one is read
    first, second = sample_request(), sample_request()
    assert post(first).status == 202
    assert post(second).status == 202
    assert get(first["id"]).status == 200

    # Then one producer, one DynamoDB client and one Secrets Manager client (the caller's Slack destination is
    # described, never read) served all three requests
    assert CountingProducer.built == 1
    assert clients == ["dynamodb", "secretsmanager"]


def test_a_push_endpoint_of_another_account_is_422_on_the_field(publisher):
    body = sample_request(channels=["push"])
    body["customer"]["push_endpoint"] = body["customer"]["push_endpoint"].replace("123456789012", "210987654321")
    answer = post(body)
    assert answer.status == 422
    [detail] = answer.json()["error"]["details"]
    assert detail["loc"] == ["customer", "push_endpoint"]
    assert "another account" in detail["msg"]
    assert publisher.records == []
