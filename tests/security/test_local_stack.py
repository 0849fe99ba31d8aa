"""Callers and quotas on the local stack, over HTTP: what a shop sees, what reaches Kafka, what is delivered.

The local API puts each request's caller (``X-Devstack-Caller``) into the event as API Gateway's authorizer
would; this package's stack has low quotas (conftest.py). Every test uses callers and phone numbers of its own.
"""

from __future__ import annotations

import uuid

import pytest

from devstack.stack import LocalStack
from tests.e2e.test_local_stack import eventually
from tests.security.callers import call, new_phone, new_shop, requested_records
from tests.security.conftest import QUOTA_ENVIRONMENT
from tests.support import caller_id, sample_request

pytestmark = pytest.mark.e2e

NOTIFICATIONS = "/v1/notifications"


def sent(api: str, caller: str, notification_id: str) -> dict | None:
    """The notification's status as ``caller`` reads it, once every channel is sent."""
    status, _, body = call(api, "GET", f"{NOTIFICATIONS}/{notification_id}", caller)
    if status != 200 or any(c["state"] != "sent" for c in body["channels"]):
        return None
    return body


def test_two_callers_with_the_same_id_and_key_get_two_notifications_each_delivered(local_stack: LocalStack):
    assert local_stack.info is not None
    api, bootstrap = local_stack.info.api_url, local_stack.info.bootstrap
    # Given two shops posting the same notification id under the same idempotency key, both for the webhook
    shop_a, shop_b = new_shop(local_stack), new_shop(local_stack)
    body_a = sample_request(channels=["webhook"])
    body_b = sample_request(id=body_a["id"], channels=["webhook"])
    nid = body_a["id"]

    # When both post it
    status_a, headers_a, _ = call(api, "POST", NOTIFICATIONS, shop_a, body_a, **{"Idempotency-Key": "order-1"})
    status_b, headers_b, _ = call(api, "POST", NOTIFICATIONS, shop_b, body_b, **{"Idempotency-Key": "order-1"})

    # Then each is accepted as a new notification (neither is a replay of the other)
    assert (status_a, status_b) == (202, 202)
    assert "idempotent-replayed" not in headers_a
    assert "idempotent-replayed" not in headers_b
    # And Kafka holds one requested record per caller under that id
    assert sorted(e["caller"] for e in requested_records(bootstrap, nid)) == sorted(
        [caller_id(shop_a), caller_id(shop_b)]
    )
    # And each shop's webhook is delivered (the sender's deduplication keeps them apart too), each shown sent
    assert eventually(lambda: sent(api, shop_a, nid)), call(api, "GET", f"{NOTIFICATIONS}/{nid}", shop_a)
    assert eventually(lambda: sent(api, shop_b, nid)), call(api, "GET", f"{NOTIFICATIONS}/{nid}", shop_b)
    # each at its own shop's webhook
    for shop, body in ((shop_a, body_a), (shop_b, body_b)):
        orders = [d.json()["purchase"]["order_id"] for d in local_stack.webhook.accepted(f"/webhook/{shop}")]
        assert orders == [body["purchase"]["order_id"]], shop


def test_get_across_callers_is_404_as_for_an_id_nobody_used(local_stack: LocalStack):
    assert local_stack.info is not None
    api = local_stack.info.api_url
    # Given shop A's notification
    shop_a = new_shop(local_stack)
    body = sample_request(channels=["slack"])
    assert call(api, "POST", NOTIFICATIONS, shop_a, body)[0] == 202

    # When another IAM caller, a JWT caller of the same name, and A itself read it
    other = call(api, "GET", f"{NOTIFICATIONS}/{body['id']}", new_shop(local_stack))
    same_name_by_jwt = call(api, "GET", f"{NOTIFICATIONS}/{body['id']}", f"jwt:{shop_a}")
    unknown = call(api, "GET", f"{NOTIFICATIONS}/{uuid.uuid4()}", new_shop(local_stack))
    own = call(api, "GET", f"{NOTIFICATIONS}/{body['id']}", shop_a)

    # Then only A sees it; the others get exactly the answer of an unknown id
    assert other[0] == same_name_by_jwt[0] == unknown[0] == 404
    assert (
        other[2]["error"]["code"] == same_name_by_jwt[2]["error"]["code"] == unknown[2]["error"]["code"] == "not_found"
    )
    assert own[0] == 200


def test_an_id_reused_with_another_payload_under_a_new_key_is_409_and_nothing_is_produced(local_stack: LocalStack):
    assert local_stack.info is not None
    api, bootstrap = local_stack.info.api_url, local_stack.info.bootstrap
    # Given an accepted purchase
    shop = new_shop(local_stack)
    body = sample_request(channels=["slack"])
    assert call(api, "POST", NOTIFICATIONS, shop, body, **{"Idempotency-Key": "first"})[0] == 202

    # When the shop sends another order for another customer under the same id and a new key
    other = sample_request(
        id=body["id"], channels=["email"], customer={"id": "c-9", "name": "Bo", "email": "bo@example.com"}
    )
    status, _, answer = call(api, "POST", NOTIFICATIONS, shop, other, **{"Idempotency-Key": "second"})

    # Then it is 409 notification_id_reused, and Kafka holds the first purchase only
    assert status == 409, answer
    assert answer["error"]["code"] == "notification_id_reused"
    [record] = requested_records(bootstrap, body["id"])
    assert record["purchase"]["order_id"] == body["purchase"]["order_id"]
    assert record["channels"] == ["slack"]


def test_over_a_recipients_quota_is_429_with_retry_after_and_nothing_is_produced(local_stack: LocalStack):
    assert local_stack.info is not None
    api, bootstrap = local_stack.info.api_url, local_stack.info.bootstrap
    limit = int(QUOTA_ENVIRONMENT["QUOTA_PHONE_PER_HOUR"])
    # Given SMS purchases to one phone number, from several shops: more than two hourly windows' worth
    phone = new_phone()
    bodies = [
        sample_request(channels=["sms"], customer={"id": "c-1", "name": "Ada", "phone": phone})
        for _ in range(2 * limit + 1)
    ]

    # When they are posted (however the hour boundary falls, at most two windows' worth can be accepted)
    answers = [(body, call(api, "POST", NOTIFICATIONS, new_shop(local_stack), body)) for body in bodies]

    # Then the first is accepted and at least one is refused: 429 quota_exceeded with Retry-After within the hour
    assert answers[0][1][0] == 202
    refused = [(body, answer) for body, answer in answers if answer[0] == 429]
    assert refused, [answer[0] for _, answer in answers]
    assert {answer[0] for _, answer in answers} == {202, 429}
    for body, (_, headers, error) in refused:
        assert error["error"]["code"] == "quota_exceeded"
        assert 1 <= int(headers["retry-after"]) <= 3600
        # And nothing of a refused notification reached Kafka
        assert requested_records(bootstrap, body["id"]) == []


def test_over_a_callers_daily_quota_is_429_and_other_callers_go_on(local_stack: LocalStack):
    assert local_stack.info is not None
    api, bootstrap = local_stack.info.api_url, local_stack.info.bootstrap
    limit = int(QUOTA_ENVIRONMENT["QUOTA_CALLER_PER_DAY"])
    shop = new_shop(local_stack)
    bodies = [sample_request(channels=["slack"]) for _ in range(2 * limit + 1)]
    answers = [call(api, "POST", NOTIFICATIONS, shop, body) for body in bodies]
    refused = [body for body, answer in zip(bodies, answers, strict=True) if answer[0] == 429]
    assert refused, [answer[0] for answer in answers]
    assert all(int(answer[1]["retry-after"]) >= 1 for answer in answers if answer[0] == 429)
    assert requested_records(bootstrap, refused[-1]["id"]) == []
    assert call(api, "POST", NOTIFICATIONS, new_shop(local_stack), sample_request(channels=["slack"]))[0] == 202


def test_a_request_without_a_caller_is_401(local_stack: LocalStack):
    assert local_stack.info is not None
    api = local_stack.info.api_url
    status, headers, answer = call(api, "POST", NOTIFICATIONS, "anonymous", sample_request())
    assert status == 401
    assert answer["error"]["code"] == "unauthenticated"
    assert headers["x-correlation-id"]
    assert call(api, "GET", f"{NOTIFICATIONS}/{uuid.uuid4()}", "anonymous")[0] == 401
