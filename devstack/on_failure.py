"""The record a Lambda Kafka trigger writes to its ``kafka://`` on-failure destination, built by the local emulator.

Source: https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html, "Record format for a
Kafka destination": one JSON document per failed record with ``requestContext``, ``responseContext``,
``version``, ``timestamp``, ``KafkaBatchInfo`` (``batchSize`` 1, ``recordInfo`` with the offset as a string and
the record's time) and ``payload``, the record as a Lambda Kafka event (key and value base64, header values as
signed byte lists, as in the function's own event). "Lambda uses the same partition key from the original record
when producing to the destination topic", so the document's Kafka key is the original key; it has no headers.

Where the page is silent the emulator chooses, and says so:

- ``condition``: the page's example shows ``RetriesExhausted``; a record older than
  ``MaximumRecordAgeInSeconds`` gets ``RecordAgeExceeded`` (the page names no value for it; readers treat the
  condition as text).
- ``responseContext`` mirrors the last invocation's answer as the Invoke API gives it (``StatusCode``,
  ``ExecutedVersion``, ``FunctionError`` "only if an error occurred during function execution",
  https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html): a raised error is ``"Unhandled"``; records the
  function itself reported in ``batchItemFailures`` come from an invocation that succeeded, so ``functionError``
  is left out. A record that expired without being invoked has ``responseContext`` null.
- ``payloadSize`` is the size in bytes of the JSON ``payload``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from devstack.apigw import local_arn
from devstack.msk_events import build_event
from notifications.kafka.msk_event import KafkaRecord
from notifications.kafka.producer import OutgoingRecord

RETRIES_EXHAUSTED = "RetriesExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"
UNHANDLED = "Unhandled"
VERSION = "1.0"


def function_arn(function: str) -> str:
    """The ARN a local function answers to (``$LATEST``, as in the page's example)."""
    return local_arn("lambda", f"function:{function}:$LATEST", region="us-east-1")


def iso_millis(epoch_ms: int) -> str:
    """``2019-11-14T18:16:04.835Z``: ISO 8601 in UTC with milliseconds, as the page's timestamps are written."""
    when = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def on_failure_document(
    record: KafkaRecord,
    *,
    condition: str,
    invocations: int,
    function_error: str | None,
    function: str,
    event_source_arn: str,
    bootstrap_servers: str,
    now_ms: int,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The on-failure record for one record the trigger gave up on."""
    payload = build_event([record], bootstrap_servers=bootstrap_servers, event_source_arn=event_source_arn)
    response: dict[str, Any] | None = None
    if condition == RETRIES_EXHAUSTED:
        response = {"statusCode": 200, "executedVersion": "$LATEST"}
        if function_error is not None:
            response["functionError"] = function_error
    return {
        "requestContext": {
            "requestId": request_id or str(uuid.uuid4()),
            "functionArn": function_arn(function),
            "condition": condition,
            "approximateInvokeCount": invocations,
        },
        "responseContext": response,
        "version": VERSION,
        "timestamp": iso_millis(now_ms),
        "KafkaBatchInfo": {
            "batchSize": 1,
            "eventSourceArn": event_source_arn,
            "bootstrapServers": bootstrap_servers,
            "payloadSize": len(json.dumps(payload).encode()),
            "recordInfo": {"offset": str(record.offset), "timestamp": iso_millis(record.timestamp)},
        },
        "payload": payload,
    }


def on_failure_record(topic: str, record: KafkaRecord, document: dict[str, Any]) -> OutgoingRecord:
    """The document as the Kafka record Lambda produces: the original key, the JSON document, no headers."""
    return OutgoingRecord(topic=topic, key=record.key, value=json.dumps(document).encode())
