"""Reading envelopes from Kafka records and building dead-letter records, shared by fanout and senders."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from notifications.errors import PoisonRecordError
from notifications.kafka.msk_event import KafkaRecord
from notifications.kafka.producer import OutgoingRecord

M = TypeVar("M", bound=BaseModel)

# No valid envelope comes near this: ingest caps request bodies at 64 KiB.
MAX_ENVELOPE_BYTES = 256 * 1024

DLQ_REASON = "dlq-reason"
DLQ_SOURCE_TOPIC = "dlq-source-topic"
DLQ_SOURCE_PARTITION = "dlq-source-partition"
DLQ_SOURCE_OFFSET = "dlq-source-offset"
DLQ_STAGE = "dlq-stage"
DLQ_HEADERS = frozenset({DLQ_REASON, DLQ_SOURCE_TOPIC, DLQ_SOURCE_PARTITION, DLQ_SOURCE_OFFSET, DLQ_STAGE})


def decode_envelope(record: KafkaRecord, model: type[M], schemas: tuple[str, ...]) -> M:
    """The record's value as ``model`` (of one of ``schemas``), or ``PoisonRecordError`` saying exactly why it can
    never be read."""
    if record.undecodable:
        raise PoisonRecordError(record.undecodable)
    if not record.value:
        raise PoisonRecordError("empty value")
    if len(record.value) > MAX_ENVELOPE_BYTES:
        raise PoisonRecordError(f"value of {len(record.value)} bytes exceeds the {MAX_ENVELOPE_BYTES}-byte limit")
    try:
        data = json.loads(record.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonRecordError(f"value is not JSON: {exc.msg if hasattr(exc, 'msg') else exc}") from exc
    if not isinstance(data, dict):
        raise PoisonRecordError("value is not a JSON object")
    schema = data.get("schema")
    if schema not in schemas:
        raise PoisonRecordError(f"unsupported schema {schema!r}, expected {' or '.join(map(repr, schemas))}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PoisonRecordError(f"invalid {schema}: {where}: {first['msg']}") from exc


def dead_letter(record: KafkaRecord, reason: str, *, topic: str, stage: str) -> OutgoingRecord:
    """The record as it was, plus headers naming the reason and where it came from."""
    kept = tuple((k, v) for k, v in record.headers if k not in DLQ_HEADERS)
    return OutgoingRecord(
        topic=topic,
        key=record.key,
        value=record.value or b"",
        headers=(
            *kept,
            (DLQ_REASON, reason.encode()[:1000]),
            (DLQ_SOURCE_TOPIC, record.topic.encode()),
            (DLQ_SOURCE_PARTITION, str(record.partition).encode()),
            (DLQ_SOURCE_OFFSET, str(record.offset).encode()),
            (DLQ_STAGE, stage.encode()),
        ),
    )
