"""Every notification belongs to its caller: ids and idempotency keys live in the caller's namespace, a caller
never sees another's notification, and one id is one notification. The ingest handler in process, on moto's
DynamoDB, with an in-memory publisher; the fanout, sender and dead-letter paths with in-memory fakes."""

from __future__ import annotations

import io
import json
import uuid

import pytest

from notifications.contracts.envelopes import CHANNEL_SCHEMA_V2, NotificationRequested, channel_messages
from notifications.contracts.keys import NotificationKey
from notifications.dlq import affected
from notifications.kafka.msk_event import KafkaRecord
from notifications.observability import logger
from notifications.registry import Channel
from notifications.runtime import ingest
from tests.channel_support import requested
from tests.security.callers import REQUESTED, get, new_shop, post
from tests.support import MemoryPublisher, caller_id, sample_request


@pytest.fixture
def publisher(moto_aws, monkeypatch: pytest.MonkeyPatch) -> MemoryPublisher:
    fake = MemoryPublisher()
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: fake)
    return fake


def envelopes(publisher: MemoryPublisher) -> list[dict]:
    return [json.loads(record.value) for record in publisher.on(REQUESTED)]


def test_two_callers_with_the_same_id_and_key_each_get_their_own_notification(publisher):
    # Given two shops that happen to send the same notification id under the same idempotency key
    shop_a, shop_b = new_shop(), new_shop()
    body = sample_request()
    other = sample_request(id=body["id"], channels=["email"])

    # When each posts (shop A twice, a client retry)
    first_a = post(shop_a, body, **{"idempotency-key": "order-1"})
    first_b = post(shop_b, other, **{"idempotency-key": "order-1"})
    again_a = post(shop_a, body, **{"idempotency-key": "order-1"})

    # Then each is accepted as its own notification: B's is not a replay of A's, nor a conflict with it
    assert (first_a.status, first_b.status) == (202, 202), (first_a.body, first_b.body)
    assert "idempotent-replayed" not in first_b.headers
    assert first_b.json()["channels"] == ["email"]
    # And A's retry replays A's answer, not B's
    assert again_a.headers["idempotent-replayed"] == "true"
    assert again_a.json() == first_a.json()
    # And two records were published, one per caller, each carrying its caller
    published = envelopes(publisher)
    assert [(e["caller"], e["notification_id"], e["channels"]) for e in published] == [
        (caller_id(shop_a), body["id"], ["email", "sms", "slack"]),
        (caller_id(shop_b), body["id"], ["email"]),
    ]
    assert {e["schema"] for e in published} == {"notification.requested/v2"}

    # And each reads its own status under the shared id
    assert [c["channel"] for c in get(shop_a, body["id"]).json()["channels"]] == [
        "email",
        "sms",
        "slack",
    ]  # in the order asked for
    assert [c["channel"] for c in get(shop_b, body["id"]).json()["channels"]] == ["email"]


def test_get_of_another_callers_notification_is_404_like_an_unknown_id(publisher):
    # Given shop A's accepted notification
    shop_a, shop_b = new_shop(), new_shop()
    body = sample_request()
    assert post(shop_a, body).status == 202

    # When shop B reads it, and an id nobody used
    theirs, unknown = get(shop_b, body["id"]), get(shop_b, str(uuid.uuid4()))

    # Then both answers are the same 404 (no oracle for what exists), and A still reads it
    assert theirs.status == unknown.status == 404
    assert theirs.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    assert get(shop_a, body["id"]).status == 200


def test_an_id_reused_with_another_payload_under_a_new_key_is_409_and_publishes_nothing(publisher):
    # Given an accepted purchase
    shop = new_shop()
    body = sample_request()
    assert post(shop, body, **{"idempotency-key": "key-1"}).status == 202

    # When the shop reuses its id for another order and customer, under a new key, and without a key
    other = sample_request(id=body["id"], customer={"id": "c-7", "name": "Bo", "email": "bo@example.com"})
    other["channels"] = ["email"]
    under_new_key = post(shop, other, **{"idempotency-key": "key-2"})
    without_key = post(shop, other)

    # Then both are 409 notification_id_reused, nothing new was published, and the status is the first one's
    for answer in (under_new_key, without_key):
        assert answer.status == 409, answer.body
        assert answer.json()["error"]["code"] == "notification_id_reused"
    assert len(envelopes(publisher)) == 1
    assert {c["channel"] for c in get(shop, body["id"]).json()["channels"]} == {"email", "sms", "slack"}
    # And the refused new key is free for its own notification
    assert post(shop, sample_request(), **{"idempotency-key": "key-2"}).status == 202


def test_the_same_payload_under_a_new_key_is_the_same_notification(publisher):
    # Given an accepted purchase
    shop = new_shop()
    body = sample_request()
    first = post(shop, body, **{"idempotency-key": "key-1"})

    # When the client retries it under another key
    again = post(shop, body, **{"idempotency-key": "key-2"})

    # Then it is the first answer again and nothing new is published
    assert again.status == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len(envelopes(publisher)) == 1


def test_a_key_reused_with_another_id_is_still_a_key_conflict(publisher):
    shop = new_shop()
    assert post(shop, sample_request(), **{"idempotency-key": "order-9"}).status == 202
    answer = post(shop, sample_request(), **{"idempotency-key": "order-9"})
    assert answer.status == 409
    assert answer.json()["error"]["code"] == "idempotency_key_reused"
    assert len(envelopes(publisher)) == 1


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_request_without_a_caller_is_401_and_touches_nothing(publisher, method):
    # When a request arrives whose authorizer context names no caller
    body = sample_request()
    answer = post("anonymous", body) if method == "POST" else get("anonymous", body["id"])

    # Then it is 401 in the JSON error contract, and nothing was published
    assert answer.status == 401
    assert answer.json()["error"]["code"] == "unauthenticated"
    assert answer.headers["x-correlation-id"]
    assert publisher.records == []


def test_authentication_comes_before_every_other_check(publisher):
    # A body that is not JSON, and a path id that is not a UUID, from nobody: 401, not 415 or 400
    assert post("anonymous", "not json", **{"content-type": "text/plain"}).status == 401  # type: ignore[arg-type]
    assert get("anonymous", "not-a-uuid").status == 401


def test_logs_name_the_caller_by_its_id_only(publisher, monkeypatch):
    # Given the function's log lines written where the test reads them
    written = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", written)

    # When a shop posts
    shop = new_shop()
    assert post(shop, sample_request()).status == 202

    # Then the accepted line carries its caller id, and no line names the shop's principal
    lines = [json.loads(line) for line in written.getvalue().splitlines()]
    accepted = [line for line in lines if line["message"] == "notification accepted"]
    assert [line["caller"] for line in accepted] == [caller_id(shop)]
    assert not [line for line in lines if shop in json.dumps(line)]


# ------------------------------------------------------------------------------- downstream of ingest


def envelope_of(caller: str, **changes: str) -> NotificationRequested:
    """A requested envelope as ingest writes it for ``caller`` (v2), read back from its wire form."""
    wire = json.loads(requested(channels=["email", "webhook"]).to_json())
    wire.update(schema="notification.requested/v2", caller=caller_id(caller), **changes)
    return NotificationRequested.model_validate_json(json.dumps(wire))


def test_fanout_passes_the_caller_on_and_each_send_is_unique_per_caller():
    # Given two callers' requested envelopes (v2) with the same notification id
    one = envelope_of("shop-a")
    two = envelope_of("shop-b", notification_id=str(one.notification_id))

    # When fanout maps them to channel messages
    first, second = channel_messages(one), channel_messages(two)

    # Then every message is v2 with its caller, keyed in its caller's namespace, and the senders' dedup keys differ
    assert {m.schema_ for m in first + second} == {CHANNEL_SCHEMA_V2}
    assert {m.key for m in first} == {NotificationKey(caller_id("shop-a"), one.notification_id)}
    assert {m.key for m in second} == {NotificationKey(caller_id("shop-b"), one.notification_id)}
    assert not {m.delivery_key for m in first} & {m.delivery_key for m in second}


def test_a_v1_envelope_without_a_caller_is_still_read_and_keyed_by_its_bare_id():
    # Given a record written before callers existed (v1: no caller field at all)
    legacy = requested(channels=["sms"])
    wire = json.loads(legacy.to_json())
    assert wire["schema"] == "notification.requested/v1"
    assert "caller" not in wire

    # Then it reads back, fans out as v1, and is keyed by its id
    [message] = channel_messages(NotificationRequested.model_validate(wire))
    assert message.schema_ == "notification.channel/v1"
    assert message.key == legacy.notification_id
    assert "caller" not in json.loads(message.to_json())


def test_a_dead_letter_marks_the_notification_in_its_callers_namespace():
    # Given a dead-lettered channel message of a caller
    [message, _] = channel_messages(envelope_of("shop-a"))
    record = KafkaRecord(
        topic="notifications.email", partition=0, offset=1, timestamp=0, key=b"k", value=message.to_json()
    )

    # Then the dead-letter service marks that caller's notification, not a bare id
    assert affected(record) == (NotificationKey(caller_id("shop-a"), message.notification_id), [Channel.EMAIL])
