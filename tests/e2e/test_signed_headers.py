"""A record with non-ASCII header bytes goes through fanout and a sender on the local stack.

Lambda hands Kafka header values over as Java signed bytes (``ë`` = ``[-61, -85]``; powertools-lambda-python issue
6862), and the local trigger emulator does the same (devstack/msk_events.py), so this is the path AWS takes.
"""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import KafkaProducer

from devstack.stack import LocalStack
from tests.channel_support import LOCAL_SHOP, requested

pytestmark = pytest.mark.e2e


def test_a_non_ascii_header_passes_fanout_and_the_sender(local_stack: LocalStack) -> None:
    # Given a requested notification for the webhook channel whose Kafka record carries a non-ASCII header
    assert local_stack.info is not None
    envelope = requested(caller=LOCAL_SHOP, channels=["webhook"]).model_copy(
        update={"correlation_id": f"signed-{uuid.uuid4().hex}"}
    )
    producer = KafkaProducer(bootstrap_servers=local_stack.info.bootstrap, acks="all")
    producer.send(
        "notifications.requested",
        key=str(envelope.notification_id).encode(),
        value=envelope.to_json(),
        headers=[("correlation-id", envelope.correlation_id.encode()), ("x-note", "Grüße aus Köln, ë".encode())],
    ).get(timeout=30)
    producer.close()

    # When the stack has had time to fan it out and deliver it
    deadline = time.monotonic() + 60
    found = []
    while not found and time.monotonic() < deadline:
        found = [d for d in local_stack.webhook.accepted() if d.json()["correlation_id"] == envelope.correlation_id]
        time.sleep(0.3)

    # Then the webhook received it once, for that notification
    assert len(found) == 1
    assert found[0].json()["notification_id"] == str(envelope.notification_id)
