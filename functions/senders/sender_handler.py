"""Sender Lambda (one function per channel, chosen by ``CHANNEL``): MSK event -> provider, partial batch response.

Powertools' ``BatchProcessor`` handles records one at a time; the sender sends a batch concurrently at the
channel's rate (``DeliveryService.deliver_batch``) and answers in the same ``batchItemFailures`` shape.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.kafka.msk_event import read_event
from notifications.observability import logger, metrics, tracer
from notifications.runtime.sender import delivery_runtime


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime = delivery_runtime()
    runtime.bind(context)
    failed = runtime.deliver_batch(read_event(event))
    return {
        "batchItemFailures": [
            {"itemIdentifier": {"partition": record.partition_id, "offset": record.offset}} for record in failed
        ]
    }
