"""Pressure on the local stack: a provider's rate limit and a provider outage slow delivery down, never
dead-letter, never duplicate (issue: delivery under provider pressure).

Both drive the webhook channel: its local receiver honours ``Idempotency-Key``, so a second send of the same
delivery would show as a replay. Messages are produced straight onto ``notifications.webhook`` (as fanout would
write them, with a non-ASCII header the trigger hands over as signed bytes) so that only the sender is measured.
"""

from __future__ import annotations

import time
import uuid

import pytest
from kafka import KafkaProducer

from devstack.consume import read_topic
from devstack.esm import retry_delay
from devstack.stack import LocalStack
from devstack.template_config import load_template
from notifications.contracts.envelopes import channel_messages
from notifications.registry import Channel
from tests.channel_support import LOCAL_SHOP, requested
from tests.e2e.conftest import PRESSURE_RATE
from tests.support import busiest_second, template_copy

pytestmark = pytest.mark.e2e

TOPIC = "notifications.webhook"


def produce(stack: LocalStack, count: int, run: str) -> set[str]:
    """``count`` webhook messages on the channel topic; answers their delivery keys."""
    assert stack.info is not None
    producer = KafkaProducer(bootstrap_servers=stack.info.bootstrap, acks="all", linger_ms=5)
    keys = set()
    futures = []
    for i in range(count):
        [message] = channel_messages(requested(caller=LOCAL_SHOP, channels=["webhook"]))  # to its own endpoint
        message = message.model_copy(update={"correlation_id": f"{run}-{i}"})
        keys.add(message.delivery_key)
        futures.append(
            producer.send(
                TOPIC,
                key=str(message.notification_id).encode(),
                value=message.to_json(),
                headers=[("correlation-id", message.correlation_id.encode()), ("x-note", "Grüße, ë".encode())],
            )
        )
    for future in futures:
        future.get(timeout=60)
    producer.close()
    return keys


def delivered_keys(stack: LocalStack, keys: set[str]) -> list[str]:
    return [k for d in stack.webhook.accepted() if (k := d.headers.get("idempotency-key")) in keys]


def dead_letters(stack: LocalStack, run: str) -> list[object]:
    assert stack.info is not None
    return read_topic(
        stack.info.bootstrap,
        "notifications.dlq",
        where=lambda r: (r.header("correlation-id") or b"").decode().startswith(run),
        until=lambda found: False,
        timeout=3,
    )


def test_a_rate_limited_provider_gets_every_notification_once_and_never_more_than_its_rate(local_stack: LocalStack):
    # Given a provider that answers 429 above PRESSURE_RATE requests per second, and a sender configured for it
    stack = local_stack
    stack.webhook.reset()
    stack.webhook.limit_rate(PRESSURE_RATE)
    run = f"rate-{uuid.uuid4().hex[:8]}"

    # When 600 notifications (15 seconds of the provider's rate) arrive on the channel at once
    keys = produce(stack, 600, run)
    deadline = time.monotonic() + 600 / PRESSURE_RATE * 3 + 60
    while len(set(delivered_keys(stack, keys))) < len(keys) and time.monotonic() < deadline:
        time.sleep(1)

    # Then every one was delivered exactly once, none is in the DLQ, and the provider never saw more than its
    # rate (+10 %) in any one-second window
    delivered = delivered_keys(stack, keys)
    assert len(set(delivered)) == len(keys) == 600
    assert len(delivered) == len(set(delivered))
    assert [d for d in stack.webhook.replays() if d.headers.get("idempotency-key") in keys] == []
    seen = [d.received_at for d in stack.webhook.deliveries() if d.headers.get("idempotency-key") in keys]
    assert busiest_second(seen) <= PRESSURE_RATE * 1.1
    assert dead_letters(stack, run) == []
    stack.webhook.reset()


def test_a_provider_outage_longer_than_the_trigger_retries_is_waited_out(local_stack: LocalStack):
    # Given the trigger's retry budget in this stack: its attempts (from template.yaml) at the stack's back-off
    stack = local_stack
    trigger = next(t for t in load_template(stack.config.template).function("WebhookSenderFunction").kafka_triggers)
    budget = sum(
        retry_delay(n, base=stack.config.retry_backoff_seconds, cap=stack.config.retry_backoff_cap_seconds)
        for n in range(1, trigger.effective_retry_attempts + 1)
    )
    outage = max(3 * budget, 15.0)

    # And a provider that is down (503 to everything)
    log = stack.logs_dir / "WebhookSenderFunction.log"
    logged_before = log.stat().st_size
    stack.webhook.reset()
    stack.webhook.fail_fraction(1.0, status=503)
    run = f"outage-{uuid.uuid4().hex[:8]}"
    keys = produce(stack, 40, run)

    # When it stays down for three times what the trigger's retries alone would survive
    time.sleep(outage)
    tried = [d for d in stack.webhook.deliveries() if d.headers.get("idempotency-key") in keys]
    assert tried, "the sender should have tried the provider during the outage"
    assert dead_letters(stack, run) == []
    # And the sender waited it out itself: it put every record it could not send back on its topic (deferral),
    # so none was reported failed to the trigger, whose retries (and record age) are no budget for an outage
    with log.open("rb") as lines:
        lines.seek(logged_before)
        assert b"record reported failed" not in lines.read()

    # And then recovers
    stack.webhook.fail_fraction(0)
    deadline = time.monotonic() + 90
    while len(set(delivered_keys(stack, keys))) < len(keys) and time.monotonic() < deadline:
        time.sleep(0.5)

    # Then every notification is delivered exactly once, none is in the DLQ, and no operator did anything
    delivered = delivered_keys(stack, keys)
    assert sorted(delivered) == sorted(keys)
    assert dead_letters(stack, run) == []
    # The circuit kept the sender from hammering the provider: far fewer calls than one per record per retry
    assert len(tried) < len(keys) * (trigger.effective_retry_attempts + 1)
    stack.webhook.reset()


# The webhook sender's grant to put a deferred record back on its own topic (template.yaml, the channel loop).
DEFERRAL_GRANT = """                  - Sid: DeferOnChannel # used when a record waits out throttling or an outage: back on its topic
                    Effect: Allow
                    Action: kafka-cluster:WriteData"""


def test_the_outage_test_fails_on_kafka_authorization_without_the_deferral_grant(local_stack, tmp_path):
    # Given the webhook sender's Kafka ACLs from a copy of template.yaml whose senders may not write their own topic
    stack = local_stack
    assert stack.permissions is not None, "the e2e stack enforces the template's permissions"
    copy = template_copy(
        tmp_path, DEFERRAL_GRANT, DEFERRAL_GRANT.replace("kafka-cluster:WriteData", "kafka-cluster:DescribeTopic")
    )
    log = stack.logs_dir / "WebhookSenderFunction.log"
    logged_before = log.stat().st_size
    stack.permissions.apply_kafka_acls(stack.permissions.roles_of(copy)["WebhookSenderFunction"])
    try:
        # When the provider-outage test runs
        with pytest.raises(AssertionError):
            test_a_provider_outage_longer_than_the_trigger_retries_is_waited_out(stack)
    finally:
        stack.permissions.apply_kafka_acls(stack.permissions.roles_of(stack.config.template)["WebhookSenderFunction"])

    # Then it failed because the broker refused the deferrals (as MSK would: TOPIC_AUTHORIZATION_FAILED)
    with log.open("rb") as lines:
        lines.seek(logged_before)
        assert b"TopicAuthorizationFailedError: notifications.webhook" in lines.read()
    # And with the template's ACLs back (the outage test above passed with them), the sender defers again: a short
    # outage is written back on the topic without a refusal, and then delivered once
    stack.webhook.fail_fraction(0)
    time.sleep(5)  # the refused records reach the DLQ or their channel first
    logged_before = log.stat().st_size
    stack.webhook.fail_fraction(1.0, status=503)
    keys = produce(stack, 5, f"regrant-{uuid.uuid4().hex[:8]}")
    time.sleep(3)
    stack.webhook.fail_fraction(0)
    deadline = time.monotonic() + 60
    while len(set(delivered_keys(stack, keys))) < len(keys) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert sorted(delivered_keys(stack, keys)) == sorted(keys)
    with log.open("rb") as lines:
        lines.seek(logged_before)
        logged = lines.read()
    assert b'"deferred"' in logged
    assert b"TopicAuthorizationFailedError" not in logged
    stack.webhook.reset()


def test_the_channel_list_is_the_registry(local_stack: LocalStack):
    assert local_stack.info is not None
    assert sorted(local_stack.info.channels) == sorted(c.value for c in Channel)
