"""Broker outage: while Kafka is down ingest answers only 503; after it is back the client's retries with the
same keys are accepted and each notification is delivered exactly once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from devstack.apigw import http_api_event, http_result
from devstack.broker import KafkaBroker, ensure_topics
from devstack.consume import read_topic
from devstack.lambda_context import LocalLambdaContext
from devstack.msk_events import build_event
from devstack.topics import TOPICS
from tests.support import reset_runtime, sample_request

ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/outage/00000000-0000-0000-0000-000000000000-1"
COUNT = 4  # each post during the outage waits out KAFKA_SEND_TIMEOUT_SECONDS


def _post(handler, body: dict, key: str):
    event = http_api_event(
        "POST",
        "/v1/notifications",
        body=json.dumps(body),
        headers={"content-type": "application/json", "idempotency-key": key},
    )
    return http_result(handler(event, LocalLambdaContext("ingest")))


def test_outage_answers_503_then_retries_deliver_once(tmp_path: Path, moto_aws, monkeypatch):
    import fanout_handler
    import ingest_handler
    import sender_handler

    broker = KafkaBroker(tmp_path / "kafka")
    bootstrap = broker.start(timeout=120)
    try:
        ensure_topics(bootstrap, TOPICS)
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        monkeypatch.setenv("KAFKA_SEND_TIMEOUT_SECONDS", "3")
        reset_runtime()
        bodies = [sample_request(channels=["email"]) for _ in range(COUNT)]
        keys = [f"key-{body['id']}" for body in bodies]

        # Given a warm ingest whose producer is connected, and then the broker goes down
        warm = sample_request(channels=["email"])
        assert _post(ingest_handler.handler, warm, f"key-{warm['id']}").status == 202
        broker.stop()

        # When the shop posts during the outage
        during = [_post(ingest_handler.handler, body, key) for body, key in zip(bodies, keys, strict=True)]

        # Then every answer is 503 with Retry-After, never 202
        assert [r.status for r in during] == [503] * COUNT
        assert all(int(r.headers["retry-after"]) > 0 for r in during)

        # When the broker is back and the shop retries with the same keys (twice, as impatient clients do)
        broker.start(timeout=120)
        after = [_post(ingest_handler.handler, body, key) for body, key in zip(bodies, keys, strict=True)]
        again = [_post(ingest_handler.handler, body, key) for body, key in zip(bodies, keys, strict=True)]

        # Then each is accepted once, the second retry is a replay of the first answer
        assert [r.status for r in after] == [202] * COUNT
        assert [r.status for r in again] == [202] * COUNT
        assert all(r.headers.get("idempotent-replayed") == "true" for r in again)
        assert [r.json() for r in again] == [r.json() for r in after]

        # And everything that reached Kafka is delivered exactly once
        ids = {b["id"].encode() for b in bodies} | {warm["id"].encode()}
        requested = read_topic(
            bootstrap,
            "notifications.requested",
            where=lambda r: r.key in ids,
            until=lambda found: len({r.key for r in found}) >= len(ids),
        )
        assert fanout_handler.handler(
            build_event(requested, bootstrap_servers=bootstrap, event_source_arn=ARN), LocalLambdaContext("fanout")
        ) == {"batchItemFailures": []}
        emails = read_topic(
            bootstrap,
            "notifications.email",
            where=lambda r: r.key in ids,
            until=lambda found: len({r.key for r in found}) >= len(ids),
        )
        monkeypatch.setenv("CHANNEL", "email")
        event = build_event(emails, bootstrap_servers=bootstrap, event_source_arn=ARN)
        assert sender_handler.handler(event, LocalLambdaContext("email")) == {"batchItemFailures": []}
        # A redelivery of the whole batch changes nothing.
        assert sender_handler.handler(event, LocalLambdaContext("email")) == {"batchItemFailures": []}
        orders = [b["purchase"]["order_id"] for b in [*bodies, warm]]
        sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
        counts = Counter(o for m in sent for o in orders if o in m.subject)
        assert counts == Counter(orders)
    finally:
        broker.stop()
