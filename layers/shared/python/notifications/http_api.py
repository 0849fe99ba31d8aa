"""HTTP side of ingest: the routes, request parsing and the one JSON error contract.

Every error is ``{"error": {"code": <machine-readable>, "message": <human>, "details": [...]}}``. Typed errors
are mapped to a status here and nowhere else.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from uuid import UUID

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from pydantic import ValidationError

from notifications.errors import BrokerUnavailableError
from notifications.ingest import IdempotentIngest
from notifications.models import NotificationRequest
from notifications.observability import logger, metrics, new_correlation_id

CORRELATION_ID_HEADER = "X-Correlation-Id"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255


class ApiError(Exception):
    def __init__(
        self,
        status: HTTPStatus,
        code: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}


def _json_response(status: int, body: Any, headers: dict[str, str]) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, separators=(",", ":")),
        headers=headers,
    )


def _raw_body(event: APIGatewayProxyEventV2) -> bytes:
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, "malformed_body", "body is not valid base64") from exc
    return body.encode("utf-8")


def parse_notification(event: APIGatewayProxyEventV2, max_bytes: int) -> NotificationRequest:
    content_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send the body as application/json")
    raw = _raw_body(event)
    if len(raw) > max_bytes:
        raise ApiError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "payload_too_large",
            f"body is {len(raw)} bytes; the limit is {max_bytes}",
        )
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(HTTPStatus.BAD_REQUEST, "malformed_json", f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "validation_failed",
            "body must be a JSON object",
            details=[{"loc": [], "msg": "must be an object", "type": "object_type"}],
        )
    try:
        return NotificationRequest.model_validate(data)
    except ValidationError as exc:
        details = [
            {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise ApiError(
            HTTPStatus.UNPROCESSABLE_ENTITY, "validation_failed", "the request has invalid fields", details=details
        ) from exc


def idempotency_key(event: APIGatewayProxyEventV2, request: NotificationRequest) -> str:
    key = event.headers.get(IDEMPOTENCY_KEY_HEADER.lower())
    if key is None:
        return str(request.id)
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ApiError(
            HTTPStatus.BAD_REQUEST,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters",
        )
    return key


def correlation_id(event: APIGatewayProxyEventV2) -> str:
    given = (event.headers.get(CORRELATION_ID_HEADER.lower()) or "").strip()
    return given if given and len(given) <= 128 and given.isprintable() else new_correlation_id()


def build_app(
    runtime: Callable[[], IdempotentIngest], max_body_bytes: Callable[[], int], retry_after_seconds: Callable[[], int]
) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver()

    @app.post("/v1/notifications")
    def post_notification() -> Response[str]:
        event = app.current_event
        cid = app.context["correlation_id"]
        request = parse_notification(event, max_body_bytes())
        key = idempotency_key(event, request)
        outcome = runtime().accept(request, key, cid, app.lambda_context)
        headers = {CORRELATION_ID_HEADER: cid, "Location": f"/v1/notifications/{request.id}"}
        if outcome.replayed:
            headers[REPLAYED_HEADER] = "true"
            metrics.add_metric(name="IdempotentReplays", unit="Count", value=1)
        logger.info(
            "notification accepted",
            notification_id=str(request.id),
            order_id=request.purchase.order_id,
            replayed=outcome.replayed,
        )
        return _json_response(HTTPStatus.ACCEPTED, outcome.accepted.model_dump(mode="json"), headers)

    @app.get("/v1/notifications/<notification_id>")
    def get_notification(notification_id: str) -> Response[str]:
        try:
            nid = UUID(notification_id)
        except ValueError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_id", "the id must be a UUID") from exc
        status = runtime().service.status_of(nid)
        if status is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "not_found", f"no notification {nid}")
        return _json_response(
            HTTPStatus.OK, status.model_dump(mode="json"), {CORRELATION_ID_HEADER: app.context["correlation_id"]}
        )

    def error(exc: ApiError) -> Response[str]:
        body = {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}
        headers = {CORRELATION_ID_HEADER: app.context.get("correlation_id", ""), **exc.headers}
        return _json_response(exc.status, body, headers)

    @app.exception_handler(ApiError)
    def api_error(exc: ApiError) -> Response[str]:
        return error(exc)

    @app.exception_handler(IdempotencyValidationError)
    def key_reused(_: IdempotencyValidationError) -> Response[str]:
        return error(
            ApiError(
                HTTPStatus.CONFLICT, "idempotency_key_reused", "this idempotency key was used with a different payload"
            )
        )

    @app.exception_handler(IdempotencyAlreadyInProgressError)
    def in_flight(_: IdempotencyAlreadyInProgressError) -> Response[str]:
        return error(
            ApiError(
                HTTPStatus.CONFLICT,
                "request_in_flight",
                "a request with this idempotency key is still being processed; retry shortly",
                headers={"Retry-After": "1"},
            )
        )

    @app.exception_handler(BrokerUnavailableError)
    def broker_down(exc: BrokerUnavailableError) -> Response[str]:
        logger.warning("broker unavailable, answering 503", reason=str(exc))
        metrics.add_metric(name="BrokerUnavailable", unit="Count", value=1)
        return error(
            ApiError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "broker_unavailable",
                "the notification was not accepted; retry with the same key",
                headers={"Retry-After": str(retry_after_seconds())},
            )
        )

    @app.exception_handler(IdempotencyPersistenceLayerError)
    def store_down(exc: IdempotencyPersistenceLayerError) -> Response[str]:
        logger.warning("idempotency store unavailable, answering 503", reason=str(exc))
        return error(
            ApiError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the notification was not accepted; retry with the same key",
                headers={"Retry-After": str(retry_after_seconds())},
            )
        )

    @app.not_found
    def route_not_found(_: Exception) -> Response[str]:
        return error(ApiError(HTTPStatus.NOT_FOUND, "route_not_found", "no such route"))

    return app
