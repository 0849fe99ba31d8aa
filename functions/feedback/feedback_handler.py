"""Feedback Lambda: SES events (EventBridge) and SNS SMS delivery logs (CloudWatch Logs) -> channel status.

Two triggers, one function: an EventBridge rule on the default bus, where SES v2 publishes the configuration set's
events (EventBridge rather than an SNS topic: no topic to own, encrypt and subscribe, the rule filters by detail
type and configuration set, and Lambda's asynchronous invocation retries failures and keeps what still fails on
an on-failure destination), and a CloudWatch Logs subscription filter on each SNS SMS delivery status log group.
https://docs.aws.amazon.com/ses/latest/dg/monitoring-eventbridge.html
https://docs.aws.amazon.com/lambda/latest/dg/services-cloudwatchlogs.html

Records we cannot read and events for message ids we did not send are counted and dropped, never retried. A
status write that fails (or an event that overtook the sender's own write) raises: Lambda retries the event.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import CloudWatchLogsEvent, EventBridgeEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.feedback import SES_DETAIL_TYPES, Feedback, FeedbackError, ses_feedback, sms_feedback
from notifications.observability import logger, metrics, tracer
from notifications.runtime.feedback import feedback_runtime


def _feedback(event: dict[str, Any]) -> list[Feedback | FeedbackError]:
    """Every piece of feedback the invocation carries (a CloudWatch Logs batch holds several log lines)."""
    found: list[Feedback | FeedbackError] = []
    if "awslogs" in event:
        for line in CloudWatchLogsEvent(event).parse_logs_data().log_events:
            try:
                found.append(sms_feedback(line.message))
            except FeedbackError as exc:
                found.append(exc)
        return found
    bridge = EventBridgeEvent(event)
    if bridge.get("source") != "aws.ses" or bridge.get("detail-type") not in SES_DETAIL_TYPES:
        return [FeedbackError(f"not an SES event: {bridge.get('source')!r} {bridge.get('detail-type')!r}")]
    try:
        found.append(ses_feedback(bridge.detail))
    except FeedbackError as exc:
        found.append(exc)
    return found


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    service = feedback_runtime()
    outcomes: dict[str, int] = {}
    for item in _feedback(event):
        if isinstance(item, FeedbackError):
            logger.warning("feedback dropped", reason=str(item))
            metrics.add_metric(name="FeedbackUnreadable", unit="Count", value=1)
            outcome = "unreadable"
        else:
            outcome = service.apply(item).value
            logger.info(
                "feedback",
                provider=item.provider,
                provider_message_id=item.message_id,
                state=item.state.value,
                outcome=outcome,
            )
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes
