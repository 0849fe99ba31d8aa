"""Fanout Lambda: MSK event from ``notifications.requested`` -> one message per channel topic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.kafka.msk_event import batch_response, read_event
from notifications.observability import logger, metrics, tracer
from notifications.runtime.fanout import fanout_runtime

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return batch_response(fanout_runtime().process(read_event(event)))
