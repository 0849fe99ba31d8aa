"""Fanout Lambda: MSK event from ``notifications.requested`` -> one message per channel topic."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.kafka.msk_event import read_event
from notifications.observability import logger, metrics, tracer
from notifications.runtime.fanout import fanout_runtime


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failed = fanout_runtime().process(read_event(event))
    return {
        "batchItemFailures": [
            {"itemIdentifier": {"partition": record.partition_id, "offset": record.offset}} for record in failed
        ]
    }
