"""Accepted means durable: with no broker, ingest answers 503 with Retry-After and never 202; the retry succeeds."""

from __future__ import annotations

import json

import ingest_handler

from devstack.apigw import http_api_event, http_result
from devstack.consume import read_topic
from devstack.lambda_context import LocalLambdaContext
from devstack.ports import free_port
from tests.support import reset_runtime, sample_request


def _post(body: dict, key: str):
    event = http_api_event(
        "POST",
        "/v1/notifications",
        body=json.dumps(body),
        headers={"content-type": "application/json", "idempotency-key": key, "x-correlation-id": f"corr-{key}"},
    )
    return http_result(ingest_handler.handler(event, LocalLambdaContext("ingest")))


def test_unreachable_broker_answers_503_leaves_no_record_and_the_retry_is_accepted(
    kafka_bootstrap, moto_aws, monkeypatch, unique
):
    # Given a broker address nobody listens on
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("KAFKA_SEND_TIMEOUT_SECONDS", "2")
    reset_runtime()
    body, key = sample_request(), f"key-{unique}"

    # When the shop posts twice with the same key
    answers = [_post(body, key) for _ in range(2)]

    # Then both are 503 with Retry-After (the second is not a 409: the failed attempt left no record)
    for answer in answers:
        assert answer.status == 503, answer.body
        assert answer.json()["error"]["code"] == "broker_unavailable"
        assert int(answer.headers["retry-after"]) > 0
    items = moto_aws.client("dynamodb").scan(TableName="notifications-idempotency")["Items"]
    assert items == []

    # When the function is pointed at the real broker and the shop retries with the same key
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("KAFKA_SEND_TIMEOUT_SECONDS", "10")
    reset_runtime()
    retry = _post(body, key)

    # Then it is accepted, not as a replay, and the record is on the topic exactly once
    assert retry.status == 202, retry.body
    assert "idempotent-replayed" not in retry.headers
    records = read_topic(
        kafka_bootstrap,
        "notifications.requested",
        where=lambda r: r.key == body["id"].encode(),
        until=lambda r: len(r) >= 1,
    )
    assert len(records) == 1
    assert records[0].header("correlation-id") == f"corr-{key}".encode()
