"""Dead-letter Lambda: MSK event from ``notifications.dlq`` -> status ``failed`` per channel, one metric per record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.kafka_event import KafkaEventRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.kafka.msk_event import kafka_record
from notifications.observability import logger, metrics, tracer
from notifications.runtime.dlq import dead_letter_runtime

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

processor = BatchProcessor(event_type=EventType.Kafka)


def record_handler(record: KafkaEventRecord) -> None:
    dead_letter_runtime().handle(kafka_record(record))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
