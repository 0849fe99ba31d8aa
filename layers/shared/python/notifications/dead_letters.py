"""Reading ``notifications.dlq``: both kinds of dead letters, unpacked into the original records they hold.

Two writers share the topic:

- **Our own stages** (fanout, senders; :func:`notifications.records.dead_letter`) write the original record as it
  was (key, value, headers) plus ``dlq-reason``, ``dlq-stage``, ``dlq-source-topic``, ``dlq-source-partition``
  and ``dlq-source-offset`` headers.
- **The Lambda Kafka trigger** (event-source mapping) writes, when a record's retries are exhausted or it is older
  than ``MaximumRecordAgeInSeconds``, a JSON document to its ``kafka://`` on-failure destination:
  ``requestContext`` (``requestId``, ``functionArn``, ``condition``, ``approximateInvokeCount``),
  ``responseContext`` (``statusCode``, ``executedVersion``, ``functionError``), ``version``, ``timestamp``,
  ``KafkaBatchInfo`` (``batchSize``, ``eventSourceArn``, ``bootstrapServers``, ``payloadSize``, ``recordInfo``)
  and ``payload``: the original records as a Lambda Kafka event (``records`` keyed ``<topic>-<partition>``,
  key and value base64, header values as byte lists). The record key is the original record's key.
  Source: https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html ("Record format for a
  Kafka destination").

:func:`read_dead_letters` turns one DLQ record of either kind into :class:`DeadLetter` entries, one per original
record, each saying where it came from (topic, partition, offset), why it was given up and by which stage. The
redrive tool, ``python -m devstack tail`` and the dead-letter function all read the DLQ through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from notifications.kafka.msk_event import KafkaRecord, MskEventError, read_event
from notifications.records import (
    DLQ_HEADERS,
    DLQ_REASON,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_STAGE,
)

Kind = Literal["record", "on-failure", "unknown"]


class _Document(BaseModel):
    """Fields AWS may add later are ignored; the ones read here must have the documented types."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class RequestContext(_Document):
    request_id: str = Field(alias="requestId")
    function_arn: str = Field(alias="functionArn")
    condition: str
    approximate_invoke_count: int = Field(alias="approximateInvokeCount")


class ResponseContext(_Document):
    status_code: int | None = Field(default=None, alias="statusCode")
    executed_version: str | None = Field(default=None, alias="executedVersion")
    function_error: str | None = Field(default=None, alias="functionError")


class RecordInfo(_Document):
    offset: str
    timestamp: str


class KafkaBatchInfo(_Document):
    batch_size: int = Field(alias="batchSize")
    event_source_arn: str | None = Field(default=None, alias="eventSourceArn")
    bootstrap_servers: str | None = Field(default=None, alias="bootstrapServers")
    payload_size: int | None = Field(default=None, alias="payloadSize")
    record_info: RecordInfo | None = Field(default=None, alias="recordInfo")


class OnFailureRecord(_Document):
    """A Kafka trigger's on-failure record (see the module docstring for the source)."""

    request_context: RequestContext = Field(alias="requestContext")
    response_context: ResponseContext | None = Field(default=None, alias="responseContext")
    version: str
    timestamp: str
    kafka_batch_info: KafkaBatchInfo = Field(alias="KafkaBatchInfo")
    payload: dict[str, Any]

    @property
    def function_name(self) -> str:
        """``my-function`` of ``arn:aws:lambda:<region>:<account>:function:my-function[:<qualifier>]``."""
        parts = self.request_context.function_arn.split(":")
        return parts[6] if len(parts) > 6 else self.request_context.function_arn

    @property
    def reason(self) -> str:
        context = self.request_context
        reason = f"{context.condition} after {context.approximate_invoke_count} invocation(s)"
        error = self.response_context.function_error if self.response_context else None
        return f"{reason} (function error: {error})" if error else reason


@dataclass(frozen=True)
class DeadLetter:
    """One original record found on the DLQ.

    ``original`` is the record as it was on its source topic (topic, partition and offset there, key, value and
    headers without the ``dlq-*`` ones), or None when the DLQ record says nothing of its origin; ``dlq`` is the
    record on the DLQ topic itself. ``condition`` is the trigger's ``requestContext.condition`` (None for the
    dead letters of our own stages).
    """

    dlq: KafkaRecord
    kind: Kind
    reason: str
    stage: str
    original: KafkaRecord | None = None
    condition: str | None = None

    @property
    def position(self) -> str:
        """Where it sits on the DLQ, as ``redrive list`` shows it and ``--offset`` takes it."""
        if self.dlq.partition == 0:
            return str(self.dlq.offset)
        return f"{self.dlq.partition}:{self.dlq.offset}"

    @property
    def source(self) -> str:
        """``topic/partition/offset`` of the original record, ``?`` when unknown."""
        if self.original is None:
            return "?"
        return f"{self.original.topic}/{self.original.partition}/{self.original.offset}"

    @property
    def key(self) -> bytes | None:
        return self.original.key if self.original is not None else self.dlq.key

    def fields(self) -> dict[str, Any]:
        """The original record's JSON object (an envelope's fields), or {} when it has none or is not one."""
        try:
            value = json.loads(self.original.value or b"") if self.original is not None else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


def _number(value: bytes | None) -> int | None:
    try:
        return int(_text(value))
    except ValueError:
        return None


def _from_headers(record: KafkaRecord) -> DeadLetter:
    """A dead letter of one of our stages: the record itself, its origin in ``dlq-*`` headers."""
    topic = _text(record.header(DLQ_SOURCE_TOPIC))
    partition = _number(record.header(DLQ_SOURCE_PARTITION))
    offset = _number(record.header(DLQ_SOURCE_OFFSET))
    original = None
    if topic:
        original = KafkaRecord(
            topic=topic,
            partition=-1 if partition is None else partition,
            offset=-1 if offset is None else offset,
            timestamp=record.timestamp,
            timestamp_type=record.timestamp_type,
            key=record.key,
            value=record.value,
            headers=tuple((name, value) for name, value in record.headers if name not in DLQ_HEADERS),
        )
    return DeadLetter(
        dlq=record,
        kind="record" if original is not None else "unknown",
        reason=_text(record.header(DLQ_REASON)) or "?",
        stage=_text(record.header(DLQ_STAGE)) or "?",
        original=original,
    )


def _on_failure_document(record: KafkaRecord) -> dict[str, Any] | None:
    """The value as a JSON object when it looks like an on-failure record, else None."""
    if record.header(DLQ_SOURCE_TOPIC) is not None or not record.value:
        return None
    try:
        data = json.loads(record.value)
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(data, dict) and "requestContext" in data and "KafkaBatchInfo" in data:
        return data
    return None


def _from_on_failure(record: KafkaRecord, data: dict[str, Any]) -> list[DeadLetter]:
    """The records inside a trigger's on-failure document, each with the document's condition."""
    try:
        document = OnFailureRecord.model_validate(data)
        originals = read_event(document.payload)
    except (ValidationError, MskEventError) as exc:
        reason = f"unreadable on-failure record: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        return [DeadLetter(dlq=record, kind="unknown", reason=reason, stage="?")]
    stage = f"esm-{document.function_name}"
    condition = document.request_context.condition
    letters = []
    for original in originals:
        reason = document.reason
        if original.undecodable:
            reason = f"{reason}; {original.undecodable}"
        letters.append(
            DeadLetter(
                dlq=record,
                kind="on-failure",
                reason=reason,
                stage=stage,
                original=None if original.undecodable else original,
                condition=condition,
            )
        )
    return letters or [DeadLetter(dlq=record, kind="unknown", reason=f"{document.reason}; no records", stage=stage)]


def read_dead_letters(record: KafkaRecord) -> list[DeadLetter]:
    """The original records one DLQ record holds (one for our own dead letters, the payload's for the trigger's)."""
    document = _on_failure_document(record)
    if document is not None:
        return _from_on_failure(record, document)
    return [_from_headers(record)]
