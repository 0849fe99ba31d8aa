"""Reading Lambda Kafka events: AWS's documented example, signed header bytes, and one bad record among good ones.

Sources:
- the example event of https://docs.aws.amazon.com/lambda/latest/dg/with-msk.html (copied below field for field);
- header values are Java signed bytes (``ë`` arrives as ``[-61, -85]``): powertools-lambda-python issue 6862,
  aws-lambda-rust-runtime issue 688, aws-lambda-dotnet pull request 1476.
"""

from __future__ import annotations

import base64
import json

import pytest

from devstack.msk_events import build_event, signed_bytes
from notifications.kafka.msk_event import KafkaRecord, MskEventError, read_event

# The Lambda guide's example MSK event.
AWS_EXAMPLE_EVENT = {
    "eventSource": "aws:kafka",
    "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/vpc-2priv-2pub/751d2973-a626-431c-9d4e-d7975eb44dd7-2",
    "bootstrapServers": "b-2.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092,"
    "b-1.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092",
    "records": {
        "mytopic-0": [
            {
                "topic": "mytopic",
                "partition": 0,
                "offset": 15,
                "timestamp": 1545084650987,
                "timestampType": "CREATE_TIME",
                "key": "cmVjb3JkS2V5",
                "value": "eyJrZXkiOiJ2YWx1ZSJ9",
                "headers": [{"headerKey": [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]}],
            }
        ]
    },
}


def test_the_documented_example_event_decodes():
    # When the guide's example event is read
    [record] = read_event(AWS_EXAMPLE_EVENT)

    # Then every field is there, with key, value and header as bytes
    assert record == KafkaRecord(
        topic="mytopic",
        partition=0,
        offset=15,
        timestamp=1545084650987,
        key=b"recordKey",
        value=b'{"key":"value"}',
        headers=(("headerKey", b"headerValue"),),
    )
    assert record.partition_id == "mytopic-0"


def test_a_header_with_signed_bytes_decodes_like_aws_delivers_it():
    # Given the example event with a non-ASCII header as AWS sends it: Java's signed bytes (the bytes of issue 6862)
    event = json.loads(json.dumps(AWS_EXAMPLE_EVENT))
    hello = [104, 101, 108, 108, 111, 45, 119, 111, 114, 108, 100, -61, -85]
    event["records"]["mytopic-0"][0]["headers"].append({"test-header": hello})

    # When it is read
    [record] = read_event(event)

    # Then the header is the UTF-8 text that was produced, and the record is not undecodable
    assert record.header("test-header") == "hello-worldë".encode()
    assert record.undecodable is None


def test_the_emulator_writes_header_values_as_signed_bytes_and_they_read_back():
    # Given a record with a non-ASCII header value
    record = KafkaRecord(
        topic="notifications.email",
        partition=2,
        offset=9,
        timestamp=1,
        value=b"{}",
        headers=(("note", "Grüße".encode()),),
    )

    # When the local emulator builds the event Lambda would get
    event = build_event([record], bootstrap_servers="b:9092", event_source_arn="arn:aws:kafka:::cluster/x")

    # Then the header bytes are signed (as AWS sends them) and decode back to the same record
    written = event["records"]["notifications.email-2"][0]["headers"][0]["note"]
    assert written == signed_bytes("Grüße".encode()) and min(written) < 0
    assert read_event(event) == [record]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"partition": "0"}, "partition and offset integers"),
        ({"offset": None}, "partition and offset integers"),
        ({"value": "####"}, "undecodable record"),
        ({"headers": "correlation-id"}, "headers must be a list"),
        ({"headers": [{"h": [1, 300]}]}, "header 'h' must be a list of byte values"),
        ({"headers": [{"h": "text"}]}, "header 'h' must be a list of byte values"),
    ],
)
def test_an_undecodable_record_becomes_a_stand_in_and_the_others_are_read(change, reason):
    # Given a batch of three records whose middle one is broken
    good = KafkaRecord(topic="t", partition=0, offset=1, timestamp=1, value=b"a")
    event = build_event(
        [good, KafkaRecord(topic="t", partition=0, offset=2, timestamp=1, value=b"b"), good],
        bootstrap_servers="b:9092",
        event_source_arn="arn:aws:kafka:::cluster/x",
    )
    event["records"]["t-0"][1].update(change)
    raw = dict(event["records"]["t-0"][1])

    # When the event is read
    first, broken, last = read_event(event)

    # Then the good ones are intact and the broken one says why, carrying the record as delivered
    assert first == last == good
    assert broken.undecodable is not None and reason in broken.undecodable
    assert json.loads(broken.value or b"") == json.loads(json.dumps(raw, default=str))


def test_an_event_that_is_not_a_kafka_event_is_refused_whole():
    with pytest.raises(MskEventError, match="not a Kafka event"):
        read_event({"eventSource": "aws:sqs", "records": {}})
    with pytest.raises(MskEventError, match="records must be"):
        read_event({"eventSource": "aws:kafka", "records": []})


def test_the_example_value_is_the_json_the_guide_shows():
    assert base64.b64decode("eyJrZXkiOiJ2YWx1ZSJ9") == b'{"key":"value"}'
