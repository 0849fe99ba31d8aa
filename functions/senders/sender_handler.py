"""Sender Lambda (one function per channel, chosen by ``CHANNEL``): MSK event -> provider, partial batch response.

Powertools' ``BatchProcessor`` handles records one at a time; the sender sends a batch concurrently at the
channel's rate (``DeliveryService.deliver_batch``) and answers in the same ``batchItemFailures`` shape
(``batch_response``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.kafka.msk_event import batch_response, read_event
from notifications.observability import logger, metrics, tracer
from notifications.runtime.sender import delivery_runtime

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    runtime = delivery_runtime()
    runtime.bind(context)
    return batch_response(runtime.deliver_batch(read_event(event)))
