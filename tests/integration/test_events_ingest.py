"""``events/ingest_post_valid.json`` and ``events/ingest_get.json`` against a real broker and moto."""

from __future__ import annotations

import json
from pathlib import Path

import ingest_handler

from devstack.apigw import http_result
from devstack.consume import end_offsets, records_since
from devstack.lambda_context import LocalLambdaContext

EVENTS = Path(__file__).resolve().parents[2] / "events"
REQUESTED = "notifications.requested"


def load(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


def test_the_valid_sample_is_accepted_published_and_readable(kafka_env, moto_aws):
    # Given the requested topic's current end
    before = end_offsets(kafka_env, REQUESTED)

    # When the valid sample is invoked
    answer = http_result(ingest_handler.handler(load("ingest_post_valid"), LocalLambdaContext("ingest")))

    # Then it is accepted, and exactly one record with the sample's id and correlation id is on the real topic
    assert answer.status == 202, answer.body
    assert answer.headers["x-correlation-id"] == "sample-corr-0001"
    [record] = records_since(kafka_env, before)
    assert record.key == b"8f58c11d-ebc2-4ca7-a934-226e2bb6192c"
    assert dict(record.headers)["correlation-id"] == b"sample-corr-0001"
    assert json.loads(record.value)["purchase"]["order_id"] == "A-1001"

    # When the GET sample asks for that notification
    status = http_result(ingest_handler.handler(load("ingest_get"), LocalLambdaContext("ingest")))

    # Then each requested channel is accepted
    assert status.status == 200, status.body
    assert {(c["channel"], c["state"]) for c in status.json()["channels"]} == {
        ("email", "accepted"),
        ("sms", "accepted"),
        ("slack", "accepted"),
    }
