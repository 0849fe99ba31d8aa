"""The Kafka partial-batch response, pinned: what every Kafka-triggered function answers for a failed record, and
what the local event-source mapping accepts.

With ``ReportBatchItemFailures`` on a Kafka trigger, the function names each failed record as
``{"batchItemFailures": [{"itemIdentifier": {"partition": "<topic>-<n>", "offset": <n>}}]}``: ``itemIdentifier`` is
an object, not the string SQS, Kinesis and DynamoDB use; ``partition`` is a string, the ``<topic>-<n>`` key of the
event's ``records`` map; ``offset`` is a JSON number. Sources:

- AWS Lambda developer guide, "Configuring error handling controls for Kafka event sources"
  (https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html): partial batch response
  (``ReportBatchItemFailures``) for Amazon MSK and self-managed Kafka, "so Lambda can retry only the failed records".
  The Rust pull request below cites this page for its types. The Kinesis page
  (https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html) shows the string form
  ``{"itemIdentifier": "<SequenceNumber>"}`` and says an ``itemIdentifier`` with a bad key name fails the batch.
- Powertools for AWS Lambda (Python), ``BatchProcessor(EventType.Kafka)`` (pull request
  https://github.com/aws-powertools/powertools-lambda-python/pull/7941), which ``functions/dlq`` uses:
  ``aws_lambda_powertools/utilities/batch/base.py`` ``_collect_kafka_failures`` builds
  ``{"partition": f"{msg.topic}-{msg.partition}", "offset": msg.offset}``, typed in ``utilities/batch/types.py`` as
  ``KafkaItemIdentifier(partition: str, offset: int)``.
- AWS's Rust runtime, ``aws_lambda_events`` (pull request https://github.com/aws/aws-lambda-rust-runtime/pull/1164,
  "Add Kafka partial batch failure response types"): ``KafkaItemIdentifier { partition: String, offset: i64 }``,
  camelCase; its test expects ``{"itemIdentifier": {"partition": "some.topic-3", "offset": 42}}``.

Where they differ: Powertools' own documentation example
(``examples/batch_processing/src/getting_started_kafka_response.json`` in the same pull request) names the key
``"topic-partition"`` (``{"topic-partition": "mytopic-0", "offset": 1}``), which neither Powertools' code nor the
Rust types emit. The tests follow the code of both libraries; the local event-source mapping treats the
documentation example's key, like the Kinesis-style string, as an invalid response that fails the whole batch.
The Java, .NET and Go event libraries have no Kafka response type to compare.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest

from devstack.aws_resources import STATUS_TABLE
from devstack.esm import InvalidResponse, read_response
from devstack.lambda_context import LocalLambdaContext
from devstack.msk_events import build_event
from notifications.kafka.msk_event import KafkaRecord
from notifications.records import dead_letter
from notifications.registry import Channel
from tests.channel_support import CLUSTER_ARN, channel_message, message_record
from tests.support import InMemoryStatusStore, MemoryPublisher
from tests.unit.test_dlq_function import DLQ, dlq_event
from tests.unit.test_dlq_function import invoke as invoke_dlq_function
from tests.unit.test_fanout import KeyFailingPublisher, requested_record, run_fanout
from tests.unit.test_sender_partial_batch import FlakySender, email_service

PARTITION_NAME = re.compile(r"^.+-\d+$")


def documented_failure(topic: str, partition: int, offset: int) -> dict[str, Any]:
    """One ``batchItemFailures`` item in the documented Kafka shape, spelled out (not via the code under test)."""
    return {"itemIdentifier": {"partition": f"{topic}-{partition}", "offset": offset}}


def assert_documented_shape(response: Any) -> None:
    """Exactly the documented keys and JSON types, and unchanged by the JSON encoding Lambda applies."""
    assert json.loads(json.dumps(response)) == response
    assert set(response) == {"batchItemFailures"}
    for item in response["batchItemFailures"]:
        assert set(item) == {"itemIdentifier"}
        identifier = item["itemIdentifier"]
        assert set(identifier) == {"partition", "offset"}
        assert isinstance(identifier["partition"], str) and PARTITION_NAME.match(identifier["partition"])
        assert type(identifier["offset"]) is int


# --------------------------------------------------------------------------- what the functions answer


def test_fanout_names_its_failed_record_in_the_documented_shape(monkeypatch):
    # Given a batch on partition 3 whose middle record's channel messages Kafka does not acknowledge
    topic = "notifications.requested"
    records = [replace(requested_record(5_000_000_000 + i, channels=["email"])[1], partition=3) for i in range(3)]
    publisher = KeyFailingPublisher({records[1].key or b""})

    # When fanout handles it
    response = run_fanout(monkeypatch, publisher, records)

    # Then it names that record as AWS documents, with the offset a JSON number even past 32 bits
    assert response == {"batchItemFailures": [documented_failure(topic, 3, 5_000_000_001)]}
    assert_documented_shape(response)
    # And the local event-source mapping reads it as that record
    assert read_response(records, response) == {(topic, 3): {5_000_000_001}}


def test_a_sender_names_its_failed_record_in_the_documented_shape(moto_aws, monkeypatch):
    import sender_handler

    # Given two email messages on partition 1, the second failing transiently and Kafka not taking its deferral
    messages = [channel_message(Channel.EMAIL) for _ in range(2)]
    sender = FlakySender({messages[1].purchase.order_id})
    service = email_service(
        moto_aws, sender, InMemoryStatusStore(), MemoryPublisher(fail_topics=["notifications.email"])
    )
    monkeypatch.setattr(sender_handler, "delivery_runtime", lambda: service)
    records = [message_record(m, 70 + i, partition=1) for i, m in enumerate(messages)]

    # When the sender handles the batch
    event = build_event(records, bootstrap_servers="b:9098", event_source_arn=CLUSTER_ARN)
    response = sender_handler.handler(event, LocalLambdaContext("email-sender"))

    # Then it names that record as AWS documents, and the local event-source mapping reads it as that record
    assert response == {"batchItemFailures": [documented_failure("notifications.email", 1, 71)]}
    assert_documented_shape(response)
    assert read_response(records, response) == {("notifications.email", 1): {71}}


def test_the_dead_letter_function_names_its_failed_record_in_the_documented_shape(moto_aws):
    # Given a dead letter whose status write fails (no status table) next to one that needs no write
    message = channel_message(Channel.SMS)
    letter = dead_letter(message_record(message, 8), "SNS rejected the number", topic=DLQ, stage="sender-sms")
    moto_aws.client("dynamodb").delete_table(TableName=STATUS_TABLE)
    event = dlq_event((letter.key, letter.value, letter.headers), (b"foreign", b"{}", ()))

    # When the dead-letter function (Powertools' BatchProcessor for Kafka) handles them
    response = invoke_dlq_function(event)

    # Then Powertools names the failed record in the same documented shape
    assert response == {"batchItemFailures": [documented_failure(DLQ, 0, 0)]}
    assert_documented_shape(response)
    delivered = [
        KafkaRecord(topic=DLQ, partition=0, offset=offset, timestamp=1, key=None, value=b"") for offset in (0, 1)
    ]
    assert read_response(delivered, response) == {(DLQ, 0): {0}}


# --------------------------------------------------------------------------- what the local trigger accepts

BATCH = [
    KafkaRecord(topic="notifications.email", partition=0, offset=offset, timestamp=1, key=b"k", value=b"v")
    for offset in (40, 41)
]


def test_the_local_trigger_accepts_the_documented_shape():
    response = {"batchItemFailures": [documented_failure("notifications.email", 0, 41)]}
    assert read_response(BATCH, response) == {("notifications.email", 0): {41}}


@pytest.mark.parametrize(
    "identifier",
    [
        pytest.param("41", id="kinesis-style string"),
        pytest.param("notifications.email-0", id="partition name as a string"),
        pytest.param({"topic-partition": "notifications.email-0", "offset": 41}, id="powertools docs example key"),
        pytest.param({"partition": "notifications.email-0", "offset": "41"}, id="offset as a string"),
        pytest.param({"partition": 0, "offset": 41}, id="bare partition number"),
        pytest.param({"partition": "notifications.email", "offset": 41}, id="topic without partition"),
    ],
)
def test_the_local_trigger_rejects_other_shapes(identifier):
    # Given a response naming record 41 in a shape other than the documented one
    response = {"batchItemFailures": [{"itemIdentifier": identifier}]}

    # Then it is not applied as a partial failure: the whole batch counts as failed
    assert isinstance(read_response(BATCH, response), InvalidResponse)
