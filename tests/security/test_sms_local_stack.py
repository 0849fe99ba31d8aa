"""The limits on the running local stack, over HTTP: a refused phone number is a 422 and never reaches SNS while
an allowed one is texted; the local webhook receiver takes only signed deliveries; the local topics keep records
for a bounded time. (The stack: the package's, ``python -m devstack up`` without the CLI: its own broker, moto
server, receivers.)
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from devstack import topics
from devstack.stack import LocalStack
from tests.support import sample_request

pytestmark = pytest.mark.e2e

# Read at import, before the autouse fixture points the functions at a placeholder.
EXTERNAL_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture
def stack(local_stack: LocalStack) -> LocalStack:
    """The package's stack (tests/security/conftest.py): these tests stay within its lowered quotas (the default
    caller posts at most four notifications here, each allowed number is texted once)."""
    return local_stack


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:  # the receivers answer plain text
        return status, raw


def sent_sms(stack: LocalStack) -> list[dict[str, Any]]:
    assert stack.info is not None
    with urllib.request.urlopen(f"{stack.info.aws_endpoint}/moto-api/data.json", timeout=30) as response:
        return json.loads(response.read())["sns"]["SMS"]


def test_a_refused_number_is_422_and_never_reaches_sns_while_an_allowed_one_is_texted(stack):
    assert stack.info is not None
    api = f"{stack.info.api_url}/v1/notifications"
    # Given requests for SMS to a premium-rate number, a number outside the local allowlist, and an allowed mobile
    refused = {"+499001234567": "premium-rate", "+33612345678": "(FR)"}
    for phone, reason in refused.items():
        body = sample_request(channels=["sms"])
        body["customer"]["phone"] = phone

        # When each is posted, then it is a 422 on customer.phone and the id is unknown
        status, answer = call("POST", api, body)
        assert status == 422, answer
        [detail] = answer["error"]["details"]
        assert detail["loc"] == ["customer", "phone"] and reason in detail["msg"]
        assert call("GET", f"{api}/{body['id']}")[0] == 404
    allowed = sample_request(channels=["sms"])
    allowed["customer"]["phone"] = "+4915198765432"
    assert call("POST", api, allowed)[0] == 202

    # Then the allowed number gets its SMS, and SNS never saw the refused ones
    deadline = time.monotonic() + 90
    while not [m for m in sent_sms(stack) if m["phone_number"] == "+4915198765432"] and time.monotonic() < deadline:
        time.sleep(0.5)
    numbers = {m["phone_number"] for m in sent_sms(stack)}
    assert "+4915198765432" in numbers
    assert not numbers & set(refused)


def test_the_local_webhook_receiver_takes_only_signed_deliveries(stack):
    assert stack.info is not None and stack.webhook is not None
    # Given a purchase for the webhook, delivered by the stack's signed sender
    body = sample_request(channels=["webhook"])
    assert call("POST", f"{stack.info.api_url}/v1/notifications", body)[0] == 202
    deadline = time.monotonic() + 90
    while not (hooks := [d for d in stack.webhook.accepted() if d.json()["notification_id"] == body["id"]]):
        assert time.monotonic() < deadline, "the webhook delivery did not arrive"
        time.sleep(0.5)
    assert hooks[0].signature_ok is True

    # When someone posts the same bytes unsigned, replays the signed request byte for byte, or alters its body
    signed = {n: hooks[0].headers[n] for n in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    unsigned = call("POST", stack.info.webhook_url, hooks[0].body)
    replay = call("POST", stack.info.webhook_url, hooks[0].body, signed)
    altered = call("POST", stack.info.webhook_url, hooks[0].body.replace(b"49.90", b"0.01"), signed)

    # Then the unsigned and altered ones are refused, and the replay is not delivered again
    assert unsigned == (401, b"unsigned")
    assert replay == (200, b"duplicate_ignored")
    assert altered == (401, b"invalid_signature")
    assert len([d for d in stack.webhook.accepted() if d.json()["notification_id"] == body["id"]]) == 1


def test_the_local_topics_keep_records_for_a_bounded_time(stack):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    assert stack.info is not None
    if EXTERNAL_BOOTSTRAP:
        pytest.fail("an external cluster keeps its own topic settings; run without KAFKA_BOOTSTRAP_SERVERS")
    admin = KafkaAdminClient(bootstrap_servers=stack.info.bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in topics.TOPICS])
    finally:
        admin.close()
    retention = {name: entries["retention.ms"]["value"] for name, entries in described["topic"].items()}
    assert retention == {name: configs["retention.ms"] for name, configs in topics.TOPIC_CONFIGS.items()}
