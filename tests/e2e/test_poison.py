"""Poison records injected straight into every topic land in the DLQ with their reason, and the partitions keep
flowing: a valid notification posted afterwards is still delivered on every channel."""

from __future__ import annotations

import json
import uuid

import pytest
from kafka import KafkaProducer

from devstack.consume import read_topic
from devstack.stack import LocalStack
from tests.e2e.test_local_stack import ALL_CHANNELS, all_sent, call, eventually
from tests.support import sample_request

pytestmark = pytest.mark.e2e

POISONS = {
    "not JSON": b"{this is not json",
    "unsupported schema": None,  # filled per topic: the right shape under a schema version nobody reads
    "exceeds": b'{"schema": "' + b"x" * (300 * 1024) + b'"}',
}


def test_poison_records_go_to_the_dlq_and_the_partitions_keep_flowing(local_stack: LocalStack) -> None:
    assert local_stack.info is not None
    bootstrap, api = local_stack.info.bootstrap, local_stack.info.api_url
    run = uuid.uuid4().hex[:8]
    topics = ["notifications.requested"] + [f"notifications.{c}" for c in ALL_CHANNELS]

    # Given malformed, wrong-version and oversized records on every topic, on every partition
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=2 * 1024 * 1024)
    injected = 0
    for topic in topics:
        wrong_version = {"schema": topic.replace("notifications.", "notification.") + "/v9", "id": run}
        for reason, value in POISONS.items():
            payload = value if value is not None else json.dumps(wrong_version).encode()
            for partition in range(3):
                producer.send(
                    topic,
                    key=f"poison-{run}".encode(),
                    value=payload,
                    partition=partition,
                    headers=[("poison-reason", reason.encode())],
                ).get(timeout=30)
                injected += 1
    producer.close()

    # When a valid purchase is posted after them
    body = sample_request(channels=ALL_CHANNELS)
    body["customer"]["push_endpoint"] = local_stack.info.push_endpoints[0]
    status, answer = call("POST", f"{api}/v1/notifications", body)
    assert status == 202, answer

    # Then it is delivered on every channel: no partition is blocked
    assert eventually(lambda: all_sent(api, body["id"], ALL_CHANNELS), timeout=120)

    # And every poison record is in the DLQ with the reason it was refused and where it came from
    key = f"poison-{run}".encode()
    letters = read_topic(
        bootstrap,
        "notifications.dlq",
        where=lambda r: r.key == key,
        until=lambda found: len(found) >= injected,
        timeout=120,
    )
    assert len(letters) == injected
    for letter in letters:
        expected_reason = letter.header("poison-reason")
        assert expected_reason is not None
        assert expected_reason.decode() in (letter.header("dlq-reason") or b"").decode(), letter.headers
        assert letter.header("dlq-source-topic") in {t.encode() for t in topics}
        assert letter.header("dlq-source-offset") is not None
    by_source = {(lt.header("dlq-source-topic"), lt.header("dlq-source-partition")) for lt in letters}
    assert len(by_source) == len(topics) * 3
