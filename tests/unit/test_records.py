"""Reading envelopes: every way a record can be unreadable is a poison reason, never a crash."""

from __future__ import annotations

import json

import pytest

from notifications.contracts.envelopes import REQUESTED_SCHEMA, REQUESTED_SCHEMAS, NotificationRequested
from notifications.errors import PoisonRecordError
from notifications.kafka.msk_event import KafkaRecord
from notifications.records import MAX_ENVELOPE_BYTES, dead_letter, decode_envelope


def rec(value: bytes | None) -> KafkaRecord:
    return KafkaRecord(
        topic="notifications.requested",
        partition=1,
        offset=7,
        timestamp=0,
        value=value,
        key=b"k",
        headers=(("correlation-id", b"c"),),
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty value"),
        (b"", "empty value"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({"schema": "notification.requested/v9"}).encode(), "unsupported schema"),
        (json.dumps({"no": "schema"}).encode(), "unsupported schema"),
        (
            json.dumps({"schema": REQUESTED_SCHEMA, "channels": ["pigeon"]}).encode(),
            "invalid notification.requested/v1",
        ),
        (b'{"schema": "' + b"x" * MAX_ENVELOPE_BYTES + b'"}', "exceeds"),
    ],
)
def test_unreadable_values_are_poison_with_a_reason(value, reason):
    with pytest.raises(PoisonRecordError, match=reason):
        decode_envelope(rec(value), NotificationRequested, REQUESTED_SCHEMAS)


def test_dead_letter_keeps_the_record_and_names_its_origin():
    letter = dead_letter(rec(b"{bad"), "value is not JSON", topic="notifications.dlq", stage="fanout")
    headers = dict(letter.headers)
    assert (letter.topic, letter.key, letter.value) == ("notifications.dlq", b"k", b"{bad")
    assert headers == {
        "correlation-id": b"c",
        "dlq-reason": b"value is not JSON",
        "dlq-source-topic": b"notifications.requested",
        "dlq-source-partition": b"1",
        "dlq-source-offset": b"7",
        "dlq-stage": b"fanout",
    }
