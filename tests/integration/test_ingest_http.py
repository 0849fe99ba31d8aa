"""Ingest on a real broker: correlation ids in Kafka headers, replays and refusals that publish nothing."""

from __future__ import annotations

import json
import uuid

import ingest_handler
import pytest
from kafka import KafkaConsumer, TopicPartition

from devstack.apigw import http_api_event, http_result
from devstack.lambda_context import LocalLambdaContext
from tests.support import caller_id, sample_request

REQUESTED = "notifications.requested"


def post(body: dict | str, **headers: str):
    raw = body if isinstance(body, str) else json.dumps(body)
    event = http_api_event(
        "POST", "/v1/notifications", body=raw, headers={"content-type": "application/json", **headers}
    )
    return http_result(ingest_handler.handler(event, LocalLambdaContext("ingest")))


def records_with_key(bootstrap: str, key: str) -> list:
    """Every record on the requested topic with this key, read up to the end offsets of now."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(REQUESTED, p) for p in consumer.partitions_for_topic(REQUESTED) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        found = []
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for batch in consumer.poll(timeout_ms=500).values():
                found.extend(r for r in batch if r.key == key.encode())
        return found
    finally:
        consumer.close()


def test_the_given_correlation_id_travels_in_the_kafka_headers(kafka_env, moto_aws, unique):
    body = sample_request()
    answer = post(body, **{"x-correlation-id": f"shop-{unique}"})
    assert answer.status == 202, answer.body
    [record] = records_with_key(kafka_env, body["id"])
    assert dict(record.headers)["correlation-id"] == f"shop-{unique}".encode()
    assert dict(record.headers)["schema"] == b"notification.requested/v2"
    assert json.loads(record.value)["correlation_id"] == f"shop-{unique}"
    assert json.loads(record.value)["caller"] == caller_id()


def test_a_generated_correlation_id_is_returned_and_travels_in_the_kafka_headers(kafka_env, moto_aws):
    body = sample_request()
    answer = post(body)
    assert answer.status == 202, answer.body
    cid = answer.headers["x-correlation-id"]
    assert str(uuid.UUID(cid)) == cid
    [record] = records_with_key(kafka_env, body["id"])
    assert dict(record.headers)["correlation-id"] == cid.encode()


def test_a_replay_produces_nothing_new_on_kafka(kafka_env, moto_aws):
    # Given an accepted request
    body = sample_request()
    first = post(body)
    assert first.status == 202

    # When it is retried twice
    replays = [post(body), post(body)]

    # Then both answer the first 202 again and the topic still holds one record for it
    for replay in replays:
        assert replay.status == 202
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == first.json()
    assert len(records_with_key(kafka_env, body["id"])) == 1


def test_a_reused_key_with_another_payload_produces_nothing_on_kafka(kafka_env, moto_aws, unique):
    first, second = sample_request(), sample_request()
    assert post(first, **{"idempotency-key": unique}).status == 202
    conflict = post(second, **{"idempotency-key": unique})
    assert conflict.status == 409
    assert conflict.json()["error"]["code"] == "idempotency_key_reused"
    assert records_with_key(kafka_env, second["id"]) == []


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"channels": ["fax"]}, 422),
        ({"purchase": {**sample_request()["purchase"], "total": 49.9}}, 422),
        ({"customer": {"id": "c", "name": "Ada", "phone": "+49 151"}, "channels": ["sms"]}, 422),
        ({"padding": "x" * 70_000}, 413),
    ],
)
def test_a_refused_request_produces_nothing_on_kafka(kafka_env, moto_aws, change, status):
    body = sample_request(**change)
    answer = post(body)
    assert answer.status == status, answer.body
    assert records_with_key(kafka_env, body["id"]) == []
