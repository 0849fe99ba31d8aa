"""Ingest Lambda: ``POST /v1/notifications`` and ``GET /v1/notifications/{id}`` behind API Gateway HTTP API."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext
from notifications.http_api import build_app, correlation_id
from notifications.ingest import ingest_runtime
from notifications.observability import logger, metrics, tracer
from notifications.settings import ingest_settings

app = build_app(
    ingest_runtime,
    max_body_bytes=lambda: ingest_settings().max_body_bytes,
    retry_after_seconds=lambda: ingest_settings().retry_after_seconds,
)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    cid = correlation_id(APIGatewayProxyEventV2(event))
    logger.set_correlation_id(cid)
    app.append_context(correlation_id=cid)  # type: ignore[no-untyped-call]
    return app.resolve(event, context)
