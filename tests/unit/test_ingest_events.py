"""The ingest samples in events/ are API Gateway HTTP API v2 events the handler answers as documented."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

import ingest_handler
import pytest

from devstack.apigw import http_result, template_routes
from devstack.lambda_context import LocalLambdaContext
from notifications.callers import Caller
from notifications.contracts.keys import NotificationKey
from notifications.registry import Channel
from notifications.runtime import ingest
from tests.support import MemoryPublisher, record_accepted

EVENTS = Path(__file__).resolve().parents[2] / "events"
SAMPLES = ("ingest_post_valid", "ingest_post_invalid", "ingest_get")


def load(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.fixture
def publisher(moto_aws, monkeypatch: pytest.MonkeyPatch) -> MemoryPublisher:
    fake = MemoryPublisher()
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: fake)
    return fake


@pytest.mark.parametrize("name", SAMPLES)
def test_each_sample_has_the_http_api_v2_shape(name):
    event = load(name)
    method, path = event["requestContext"]["http"]["method"], event["rawPath"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == event["requestContext"]["routeKey"]
    assert event["routeKey"] in {f"{route.method} {route.path}" for route in template_routes()}
    assert event["requestContext"]["http"]["path"] == path
    assert event["requestContext"]["stage"] == "$default"
    assert all(key == key.lower() for key in event["headers"])
    if "body" in event:
        assert event["headers"]["content-length"] == str(len(event["body"].encode()))
    assert method in event["routeKey"]


def test_the_invalid_sample_is_refused_field_by_field_and_publishes_nothing(publisher):
    # When the invalid sample is invoked
    answer = http_result(ingest_handler.handler(load("ingest_post_invalid"), LocalLambdaContext("ingest")))

    # Then it is 422 naming every bad field, with the sample's correlation id, and nothing was published
    assert answer.status == 422
    assert answer.headers["x-correlation-id"] == "sample-corr-0002"
    error = answer.json()["error"]
    assert error["code"] == "validation_failed"
    assert {tuple(d["loc"]) for d in error["details"]} == {
        ("purchase", "currency"),
        ("purchase", "total"),
        ("purchase", "items", 0, "quantity"),
        ("customer", "email"),
        ("customer", "phone"),
        ("channels", 1),
    }
    assert publisher.records == []


def test_the_get_sample_reads_the_status_of_its_notification(publisher, moto_aws):
    # Given no status yet for the sample's notification
    event = load("ingest_get")
    caller = Caller.iam(event["requestContext"]["authorizer"]["iam"]["userArn"])
    key = NotificationKey(caller.id, UUID(event["pathParameters"]["id"]))
    assert http_result(ingest_handler.handler(event, LocalLambdaContext("ingest"))).status == 404

    # When ingest recorded it as accepted for email, for the sample's caller, and the sample is invoked again
    accepted = record_accepted(moto_aws.client("dynamodb"), key, [Channel.EMAIL])
    answer = http_result(ingest_handler.handler(event, LocalLambdaContext("ingest")))

    # Then the status is there
    assert answer.status == 200
    assert answer.headers["x-correlation-id"] == "sample-corr-0003"
    assert answer.json()["channels"][0] | {"updated_at": None} == {
        "channel": "email",
        "state": "accepted",
        "attempts": 0,
        "last_error": None,
        "provider_message_id": None,
        "updated_at": None,
        "history": [
            {"event": "accepted", "at": accepted.accepted_at.isoformat().replace("+00:00", "Z"), "reason": None}
        ],
        "history_dropped": 0,
    }
