"""Accepted means durable: with no broker, ingest answers 503 with Retry-After and never 202."""

from __future__ import annotations

import json
import socket

from devstack.apigw import http_api_event, http_result
from devstack.lambda_context import LocalLambdaContext
from tests.support import reset_runtime, sample_request


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_broker_answers_503_and_leaves_no_idempotency_record(moto_aws, monkeypatch):
    import ingest_handler

    # Given a broker address nobody listens on
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("KAFKA_SEND_TIMEOUT_SECONDS", "2")
    reset_runtime()
    body = sample_request()

    # When the shop posts twice with the same key
    answers = [
        http_result(ingest_handler.handler(
            http_api_event("POST", "/v1/notifications", body=json.dumps(body),
                           headers={"content-type": "application/json"}),
            LocalLambdaContext("ingest"),
        ))
        for _ in range(2)
    ]

    # Then both are 503 with Retry-After (the second is not a 409: the failed attempt left no record)
    for answer in answers:
        assert answer.status == 503, answer.body
        assert answer.json()["error"]["code"] == "broker_unavailable"
        assert int(answer.headers["retry-after"]) > 0
    items = moto_aws.client("dynamodb").scan(TableName="notifications-idempotency")["Items"]
    assert items == []
