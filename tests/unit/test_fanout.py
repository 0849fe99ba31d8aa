"""Fanout: poison records go to the DLQ and the rest of the batch is fanned out; a failed send is retried."""

from __future__ import annotations

import json
from collections.abc import Sequence

from devstack.lambda_context import LocalLambdaContext
from devstack.msk_events import build_event
from notifications.fanout import FanoutService
from notifications.kafka.producer import OutgoingRecord
from notifications.registry import Channel
from notifications.settings import FanoutSettings
from tests.channel_support import CLUSTER_ARN, kafka_record, requested
from tests.support import MemoryPublisher

TOPIC = "notifications.requested"


class KeyFailingPublisher(MemoryPublisher):
    """Fails every record whose key is in ``fail_keys`` (no acknowledgement), keeps the others."""

    def __init__(self, fail_keys: set[bytes]) -> None:
        super().__init__()
        self.fail_keys = fail_keys

    def publish_all(self, records: Sequence[OutgoingRecord]) -> list[Exception | None]:
        results: list[Exception | None] = []
        for record in records:
            if record.key in self.fail_keys:
                results.append(TimeoutError("no ack"))
            else:
                results.extend(super().publish_all([record]))
        return results


def run_fanout(monkeypatch, publisher, records):
    import fanout_handler

    service = FanoutService(settings=FanoutSettings.from_env(), publisher=publisher)
    monkeypatch.setattr(fanout_handler, "fanout_runtime", lambda: service)
    event = build_event(records, bootstrap_servers="b-1:9098", event_source_arn=CLUSTER_ARN)
    return fanout_handler.handler(event, LocalLambdaContext("fanout"))


def requested_record(offset: int, **changes):
    envelope = requested(**changes)
    return envelope, kafka_record(TOPIC, offset, envelope.to_json(), key=str(envelope.notification_id).encode())


def test_poison_records_go_to_the_dlq_and_the_rest_is_fanned_out(monkeypatch):
    # Given a batch: a good record, one that is not JSON, one of a future schema version, another good one
    first, good_1 = requested_record(10, channels=["email", "sms"])
    future = json.loads(first.to_json()) | {"schema": "notification.requested/v9"}
    second, good_2 = requested_record(13, channels=["slack", "webhook"])
    batch = [
        good_1,
        kafka_record(TOPIC, 11, b"\x00not json", key=b"bad-1"),
        kafka_record(TOPIC, 12, json.dumps(future).encode(), key=b"bad-2"),
        good_2,
    ]
    publisher = MemoryPublisher()

    # When fanout handles the batch
    result = run_fanout(monkeypatch, publisher, batch)

    # Then nothing is retried, every good record became one message per channel, and both poison records are in
    # the DLQ, unchanged, with reason, source and stage
    assert result == {"batchItemFailures": []}
    assert [r.key for r in publisher.on("notifications.email")] == [str(first.notification_id).encode()]
    assert [r.key for r in publisher.on("notifications.sms")] == [str(first.notification_id).encode()]
    assert [r.key for r in publisher.on("notifications.slack")] == [str(second.notification_id).encode()]
    assert [r.key for r in publisher.on("notifications.webhook")] == [str(second.notification_id).encode()]
    dead = publisher.on("notifications.dlq")
    assert [(d.key, d.value) for d in dead] == [(b"bad-1", batch[1].value), (b"bad-2", batch[2].value)]
    headers = [dict(d.headers) for d in dead]
    assert headers[0]["dlq-reason"].startswith(b"value is not JSON")
    assert b"unsupported schema 'notification.requested/v9'" in headers[1]["dlq-reason"]
    for h, offset in zip(headers, (b"11", b"12"), strict=True):
        assert (h["dlq-source-topic"], h["dlq-source-partition"], h["dlq-source-offset"], h["dlq-stage"]) == (
            TOPIC.encode(),
            b"0",
            offset,
            b"fanout",
        )


def test_channel_messages_carry_the_correlation_id(monkeypatch):
    _, record = requested_record(1, channels=["email"])
    publisher = MemoryPublisher()
    run_fanout(monkeypatch, publisher, [record])
    [message] = publisher.on("notifications.email")
    assert dict(message.headers)["correlation-id"] == b"corr-test"
    assert json.loads(message.value)["channel"] == Channel.EMAIL.value


def test_a_record_whose_send_fails_is_the_only_item_failure(monkeypatch):
    # Given three records on partition 2, the broker not acknowledging the middle one's messages
    records = [requested_record(20 + i, channels=["email", "slack"]) for i in range(3)]
    batch = [r for _, r in records]
    batch = [kafka_record(TOPIC, r.offset, r.value or b"", key=r.key, partition=2) for r in batch]
    publisher = KeyFailingPublisher({batch[1].key or b""})

    # When fanout handles the batch
    result = run_fanout(monkeypatch, publisher, batch)

    # Then exactly that record is reported for retry, in AWS's itemIdentifier shape, and the others went out
    assert result == {"batchItemFailures": [{"itemIdentifier": {"partition": f"{TOPIC}-2", "offset": 21}}]}
    sent = {r.key for r in publisher.records}
    assert sent == {batch[0].key, batch[2].key}
    assert len(publisher.on("notifications.email")) == 2 and len(publisher.on("notifications.slack")) == 2


def test_a_poison_record_whose_dead_letter_is_not_acknowledged_is_retried(monkeypatch):
    # Given a poison record and a DLQ that does not acknowledge
    _, good = requested_record(30, channels=["email"])
    batch = [good, kafka_record(TOPIC, 31, b"{}", key=b"bad")]
    publisher = MemoryPublisher(fail_topics=["notifications.dlq"])

    # When fanout handles the batch
    result = run_fanout(monkeypatch, publisher, batch)

    # Then the poison record is reported failed (not silently dropped) and the good one went out
    assert result == {"batchItemFailures": [{"itemIdentifier": {"partition": f"{TOPIC}-0", "offset": 31}}]}
    assert len(publisher.on("notifications.email")) == 1


def test_one_undecodable_record_is_dead_lettered_alone_and_the_batch_is_fanned_out(monkeypatch):
    # Given a batch whose middle record AWS could never have decoded for us (value not base64, partition a string)
    import fanout_handler

    first, good_1 = requested_record(20, channels=["email"])
    second, good_2 = requested_record(22, channels=["email"])
    broken = kafka_record(TOPIC, 21, b"{}", key=b"broken")
    event = build_event([good_1, broken, good_2], bootstrap_servers="b-1:9098", event_source_arn=CLUSTER_ARN)
    event["records"][f"{TOPIC}-0"][1]["value"] = "%%% not base64 %%%"
    publisher = MemoryPublisher()
    service = FanoutService(settings=FanoutSettings.from_env(), publisher=publisher)
    monkeypatch.setattr(fanout_handler, "fanout_runtime", lambda: service)

    # When fanout handles it
    result = fanout_handler.handler(event, LocalLambdaContext("fanout"))

    # Then both valid records are fanned out, nothing is retried, and the broken one is in the DLQ with its reason,
    # its source position and the record as it was delivered
    assert result == {"batchItemFailures": []}
    assert [r.key for r in publisher.on("notifications.email")] == [
        str(first.notification_id).encode(),
        str(second.notification_id).encode(),
    ]
    [dead] = publisher.on("notifications.dlq")
    headers = dict(dead.headers)
    assert headers["dlq-reason"].startswith(b"undecodable record")
    assert (headers["dlq-source-topic"], headers["dlq-source-offset"]) == (TOPIC.encode(), b"21")
    assert json.loads(dead.value)["value"] == "%%% not base64 %%%"
