"""Both kinds of dead letters read as one (``notifications.dead_letters``), and the emulator's on-failure records
(``devstack.on_failure``) against AWS's documented example.

Format: https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html ("Record format for a Kafka
destination"); the example is copied in ``tests.on_failure_example``.
"""

from __future__ import annotations

import json

import pytest

from devstack.esm import LOCAL_CLUSTER_ARN
from devstack.on_failure import on_failure_document, on_failure_record
from devstack.tail import dead_letter_lines
from notifications.dead_letters import read_dead_letters
from notifications.kafka.msk_event import KafkaRecord, read_event
from notifications.records import dead_letter
from tests.on_failure_example import (
    EXAMPLE_CONDITION,
    EXAMPLE_KEY,
    EXAMPLE_OFFSET,
    EXAMPLE_PARTITION,
    EXAMPLE_TOPIC,
    EXAMPLE_VALUE,
    documented_example,
    shape,
)

DLQ = "notifications.dlq"
ORIGINAL = KafkaRecord(
    topic="notifications.email",
    partition=2,
    offset=41,
    timestamp=1_790_000_000_123,  # 2026-09-21T14:13:20.123Z
    key=b"8f58c11d-ebc2-4ca7-a934-226e2bb6192c",
    value=b'{"schema": "notification.channel/v1"}',
    headers=(("correlation-id", b"corr-1"), ("traceparent", b"00-\xc3\xab-01")),
)


def on_dlq(value: bytes, key: bytes | None = None, headers: tuple[tuple[str, bytes], ...] = (), offset: int = 7):
    return KafkaRecord(
        topic=DLQ, partition=0, offset=offset, timestamp=1_790_000_001_000, key=key, value=value, headers=headers
    )


def emulated(**changes) -> dict:
    arguments = {
        "condition": "RetriesExhausted",
        "invocations": 3,
        "function_error": "Unhandled",
        "function": "EmailSenderFunction",
        "event_source_arn": LOCAL_CLUSTER_ARN,
        "bootstrap_servers": "127.0.0.1:9092",
        "now_ms": 1_790_000_002_000,  # two seconds later
        **changes,
    }
    return on_failure_document(ORIGINAL, **arguments)


# --------------------------------------------------------------------------- the emulator's record


def test_the_emulators_record_has_the_documented_fields_with_the_documented_types():
    # Given AWS's example (a function error after three invocations) and the emulator's record for the same case
    documented, ours = documented_example(), emulated()

    # Then they have the same keys and the same value types, all the way down
    assert shape(ours) == shape(documented)
    assert ours["requestContext"]["condition"] == documented["requestContext"]["condition"] == "RetriesExhausted"
    assert ours["version"] == documented["version"] == "1.0"


def test_the_emulators_record_describes_the_record_and_carries_it_in_the_payload():
    document = emulated()
    info = document["KafkaBatchInfo"]
    assert (info["batchSize"], info["recordInfo"]) == (1, {"offset": "41", "timestamp": "2026-09-21T14:13:20.123Z"})
    assert document["timestamp"] == "2026-09-21T14:13:22.000Z"
    assert info["payloadSize"] == len(json.dumps(document["payload"]).encode())
    assert document["requestContext"]["functionArn"].endswith(":function:EmailSenderFunction:$LATEST")
    # The payload is a Lambda Kafka event of exactly that record, headers included
    assert read_event(document["payload"]) == [ORIGINAL]


def test_a_record_the_function_reported_failed_has_no_function_error():
    # Invoke API: FunctionError is there "only if an error occurred during function execution"
    document = emulated(function_error=None)
    assert document["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}


def test_an_expired_record_has_no_response():
    document = emulated(condition="RecordAgeExceeded", invocations=0, function_error=None)
    assert document["responseContext"] is None
    assert document["requestContext"]["condition"] == "RecordAgeExceeded"


def test_the_on_failure_record_is_keyed_like_the_original_and_has_no_headers():
    # "Lambda uses the same partition key from the original record when producing to the destination topic"
    document = emulated()
    outgoing = on_failure_record(DLQ, ORIGINAL, document)
    assert (outgoing.topic, outgoing.key, outgoing.headers) == (DLQ, ORIGINAL.key, ())
    assert json.loads(outgoing.value) == document


# --------------------------------------------------------------------------- reading the DLQ


def test_the_documented_example_reads_as_its_original_record():
    # Given AWS's documented example on the DLQ, keyed with the original key as Lambda does
    record = on_dlq(json.dumps(documented_example()).encode(), key=EXAMPLE_KEY)

    # When it is read
    [letter] = read_dead_letters(record)

    # Then it names the source topic, partition and offset, the condition, and holds the record as it was
    assert letter.kind == "on-failure"
    assert letter.source == f"{EXAMPLE_TOPIC}/{EXAMPLE_PARTITION}/{EXAMPLE_OFFSET}"
    assert letter.condition == EXAMPLE_CONDITION
    assert letter.reason == "RetriesExhausted after 3 invocation(s) (function error: Unhandled)"
    assert letter.stage == "esm-my-function"
    assert letter.original is not None
    assert (letter.original.key, letter.original.value, letter.original.headers) == (EXAMPLE_KEY, EXAMPLE_VALUE, ())
    assert letter.position == "7"


def test_the_emulators_record_reads_back_as_the_original():
    outgoing = on_failure_record(DLQ, ORIGINAL, emulated())
    [letter] = read_dead_letters(on_dlq(outgoing.value, key=outgoing.key))
    assert letter.original == ORIGINAL
    assert (letter.kind, letter.stage, letter.condition) == (
        "on-failure",
        "esm-EmailSenderFunction",
        "RetriesExhausted",
    )


def test_a_dead_letter_of_our_own_reads_as_the_record_without_its_dlq_headers():
    # Given a sender's dead letter as it lands on the DLQ
    outgoing = dead_letter(ORIGINAL, "SES rejected the address", topic=DLQ, stage="sender-email")
    record = on_dlq(outgoing.value, key=outgoing.key, headers=outgoing.headers)

    # When it is read
    [letter] = read_dead_letters(record)

    # Then it is the original record again, with its origin, reason and stage
    assert letter.kind == "record"
    assert letter.original == KafkaRecord(
        topic=ORIGINAL.topic,
        partition=ORIGINAL.partition,
        offset=ORIGINAL.offset,
        timestamp=record.timestamp,
        key=ORIGINAL.key,
        value=ORIGINAL.value,
        headers=ORIGINAL.headers,
    )
    assert (letter.source, letter.reason, letter.stage, letter.condition) == (
        "notifications.email/2/41",
        "SES rejected the address",
        "sender-email",
        None,
    )


@pytest.mark.parametrize(
    "value",
    [b"{}", b"not json", b'{"requestContext": {}, "KafkaBatchInfo": {}}', b'{"requestContext": 1}'],
    ids=["empty object", "not JSON", "incomplete on-failure record", "other JSON"],
)
def test_a_record_that_names_no_origin_is_unknown_and_has_no_original(value):
    [letter] = read_dead_letters(on_dlq(value, key=b"k"))
    assert (letter.kind, letter.original, letter.source) == ("unknown", None, "?")
    assert letter.key == b"k"


def test_an_on_failure_record_with_several_records_yields_each():
    # Given an on-failure document whose payload holds two records of two partitions
    document = documented_example()
    records = document["payload"]["records"]
    second = {**records["my-topic-0"][0], "partition": 1, "offset": 7}
    records["my-topic-1"] = [second]

    # Then both come out, each with its own origin and the document's condition
    letters = read_dead_letters(on_dlq(json.dumps(document).encode()))
    assert [(d.source, d.condition) for d in letters] == [
        ("my-topic/0/100", "RetriesExhausted"),
        ("my-topic/1/7", "RetriesExhausted"),
    ]


def test_tail_prints_one_line_per_original_record_of_either_kind():
    # Given the documented on-failure record and a sender's dead letter on the DLQ
    on_failure = on_dlq(json.dumps(documented_example()).encode(), key=EXAMPLE_KEY)
    own = dead_letter(ORIGINAL, "SES rejected the address", topic=DLQ, stage="sender-email")

    # When tail renders them
    [trigger_line] = dead_letter_lines(on_failure)
    [sender_line] = dead_letter_lines(on_dlq(own.value, key=own.key, headers=own.headers))

    # Then each line names the origin, the stage and the reason
    assert trigger_line.endswith(
        f"from {EXAMPLE_TOPIC}-{EXAMPLE_PARTITION}@{EXAMPLE_OFFSET} by esm-my-function: "
        "RetriesExhausted after 3 invocation(s) (function error: Unhandled)"
    )
    assert f" dead       {'my-topic':<8} test-key " in trigger_line
    assert sender_line.endswith("from notifications.email-2@41 by sender-email: SES rejected the address")
