"""Ingest Lambda: ``POST /v1/notifications`` and ``GET /v1/notifications/{id}`` behind API Gateway HTTP API."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from notifications.http_api import build_app
from notifications.observability import logger, metrics, tracer
from notifications.runtime.ingest import ingest_runtime
from notifications.settings import ingest_settings

# Routes only: settings, clients and the Kafka producer are built on first use and kept for the environment.
app = build_app(ingest_runtime, ingest_settings)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
