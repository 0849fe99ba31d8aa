"""HTTP side of ingest: the route table, request parsing and the one JSON error contract.

Every error answers ``{"error": {"code": <machine-readable>, "message": <human>, "details": [...]}}`` with the
``X-Correlation-Id`` header. Each kind of error (status, code, extra headers) is declared once below, each route
once in ``OPERATIONS``; typed errors are mapped to them here and nowhere else. ``notifications.openapi`` builds
the published OpenAPI document from the same declarations.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from pydantic import BaseModel, ValidationError

from notifications.errors import BrokerUnavailableError
from notifications.ingest import IdempotencyKeyReusedError, RequestInFlightError, StoreUnavailableError
from notifications.models import NotificationRequest
from notifications.observability import logger, metrics, new_correlation_id

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

    from notifications.ingest import IdempotentIngest
    from notifications.settings import IngestSettings

CORRELATION_ID_HEADER = "X-Correlation-Id"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
RETRY_AFTER_HEADER = "Retry-After"
LOCATION_HEADER = "Location"
ALLOW_HEADER = "Allow"
JSON = "application/json"

MAX_KEY_LENGTH = 255
MAX_CORRELATION_ID_LENGTH = 128
# Visible ASCII, inner spaces allowed, no leading or trailing blank: safe in HTTP and Kafka headers and in logs.
IDEMPOTENCY_KEY_PATTERN = rf"^[!-~](?:[ -~]{{0,{MAX_KEY_LENGTH - 2}}}[!-~])?$"
CORRELATION_ID_PATTERN = rf"^[!-~](?:[ -~]{{0,{MAX_CORRELATION_ID_LENGTH - 2}}}[!-~])?$"
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_CORRELATION_ID = re.compile(CORRELATION_ID_PATTERN)
IN_FLIGHT_RETRY_AFTER_SECONDS = 1


# ----------------------------------------------------------------------------------------------- error contract


class ErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = []


class ErrorBody(BaseModel):
    """Body of every error answer."""

    error: ErrorInfo


@dataclass(frozen=True)
class ErrorKind:
    status: HTTPStatus
    code: str
    description: str
    headers: tuple[str, ...] = ()


MALFORMED_JSON = ErrorKind(
    HTTPStatus.BAD_REQUEST, "malformed_json", "The body is not valid JSON (or not valid base64)."
)
INVALID_IDEMPOTENCY_KEY = ErrorKind(
    HTTPStatus.BAD_REQUEST,
    "invalid_idempotency_key",
    f"The Idempotency-Key header is not 1-{MAX_KEY_LENGTH} visible ASCII characters.",
)
INVALID_ID = ErrorKind(HTTPStatus.BAD_REQUEST, "invalid_id", "The notification id in the path is not a UUID.")
NOT_FOUND = ErrorKind(HTTPStatus.NOT_FOUND, "not_found", "No notification has this id.")
ROUTE_NOT_FOUND = ErrorKind(HTTPStatus.NOT_FOUND, "route_not_found", "No route has this path.")
METHOD_NOT_ALLOWED = ErrorKind(
    HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", "The path exists for other methods.", (ALLOW_HEADER,)
)
KEY_REUSED = ErrorKind(
    HTTPStatus.CONFLICT, "idempotency_key_reused", "The idempotency key was already used with a different payload."
)
REQUEST_IN_FLIGHT = ErrorKind(
    HTTPStatus.CONFLICT,
    "request_in_flight",
    "A request with this idempotency key is still being processed; retry after Retry-After seconds.",
    (RETRY_AFTER_HEADER,),
)
PAYLOAD_TOO_LARGE = ErrorKind(
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large", "The body is larger than the limit (64 KiB by default)."
)
UNSUPPORTED_MEDIA_TYPE = ErrorKind(
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "The body is not sent as application/json."
)
VALIDATION_FAILED = ErrorKind(
    HTTPStatus.UNPROCESSABLE_ENTITY, "validation_failed", "Fields are invalid; `details` names each one."
)
INTERNAL_ERROR = ErrorKind(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "An unexpected error; retry later.")
BROKER_UNAVAILABLE = ErrorKind(
    HTTPStatus.SERVICE_UNAVAILABLE,
    "broker_unavailable",
    "Kafka did not acknowledge the notification: it was NOT accepted. Retry with the same key after Retry-After.",
    (RETRY_AFTER_HEADER,),
)
STORE_UNAVAILABLE = ErrorKind(
    HTTPStatus.SERVICE_UNAVAILABLE,
    "store_unavailable",
    "The idempotency or status store did not answer. Retry with the same key after Retry-After.",
    (RETRY_AFTER_HEADER,),
)


class ApiError(Exception):
    def __init__(
        self,
        kind: ErrorKind,
        message: str | None = None,
        *,
        details: list[ErrorDetail] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or kind.description)
        self.kind = kind
        self.message = message or kind.description
        self.details = details or []
        self.headers = headers or {}


# ------------------------------------------------------------------------------------------------- route table


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI path template, e.g. /v1/notifications/{id}
    operation_id: str
    summary: str
    success: HTTPStatus
    errors: tuple[ErrorKind, ...]

    @property
    def rule(self) -> str:
        """The path as a Powertools route rule (``{id}`` -> ``<id>``)."""
        return re.sub(r"\{(\w+)\}", r"<\1>", self.path)

    @cached_property
    def _path_regex(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(self.path)) + "$")

    def matches(self, path: str) -> bool:
        return self._path_regex.match(path) is not None


POST_NOTIFICATION = Operation(
    method="POST",
    path="/v1/notifications",
    operation_id="createNotification",
    summary="Accept a purchase notification (202 only once Kafka acknowledged it with acks=all).",
    success=HTTPStatus.ACCEPTED,
    errors=(
        MALFORMED_JSON,
        INVALID_IDEMPOTENCY_KEY,
        KEY_REUSED,
        REQUEST_IN_FLIGHT,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        VALIDATION_FAILED,
        INTERNAL_ERROR,
        BROKER_UNAVAILABLE,
        STORE_UNAVAILABLE,
    ),
)
GET_NOTIFICATION = Operation(
    method="GET",
    path="/v1/notifications/{id}",
    operation_id="getNotification",
    summary="The delivery status of each channel of a notification.",
    success=HTTPStatus.OK,
    errors=(INVALID_ID, NOT_FOUND, ROUTE_NOT_FOUND, INTERNAL_ERROR, STORE_UNAVAILABLE),
)
OPERATIONS = (POST_NOTIFICATION, GET_NOTIFICATION)


# ------------------------------------------------------------------------------------------------------ parsing


def _raw_body(event: APIGatewayProxyEventV2) -> bytes:
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ApiError(MALFORMED_JSON, "the body is not valid base64") from exc
    return body.encode("utf-8", "surrogatepass")


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", maxsplit=1)[0].strip().lower()
    return media_type == JSON or (media_type.startswith("application/") and media_type.endswith("+json"))


def parse_notification(event: APIGatewayProxyEventV2, max_bytes: int) -> NotificationRequest:
    """The request body as a model, or an ``ApiError`` (415, 413, 400 or 422)."""
    if not _is_json(event.headers.get("content-type") or ""):
        raise ApiError(UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
    raw = _raw_body(event)
    if len(raw) > max_bytes:
        raise ApiError(PAYLOAD_TOO_LARGE, f"the body is {len(raw)} bytes; the limit is {max_bytes}")
    try:
        # Strict: JSON types as the schema says (no numbers for timestamps, no floats for integers).
        return NotificationRequest.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(err["type"] == "json_invalid" for err in errors):
            raise ApiError(MALFORMED_JSON, "the body is not valid JSON") from exc
        details = [ErrorDetail(loc=list(err["loc"]), msg=err["msg"], type=err["type"]) for err in errors]
        raise ApiError(VALIDATION_FAILED, "the request has invalid fields", details=details) from exc


def idempotency_key(event: APIGatewayProxyEventV2, request: NotificationRequest) -> str:
    """The ``Idempotency-Key`` header, or else the body's ``id``."""
    key = event.headers.get(IDEMPOTENCY_KEY_HEADER.lower())
    if key is None:
        return str(request.id)
    if not _KEY.fullmatch(key):
        raise ApiError(INVALID_IDEMPOTENCY_KEY)
    return key


def correlation_id(event: APIGatewayProxyEventV2) -> str:
    """The caller's ``X-Correlation-Id`` when it is usable, else a new one."""
    given = event.headers.get(CORRELATION_ID_HEADER.lower()) or ""
    return given if _CORRELATION_ID.fullmatch(given) else new_correlation_id()


# -------------------------------------------------------------------------------------------------------- app


def _json_response(status: int, body: str, headers: dict[str, str]) -> Response[str]:
    return Response(status_code=status, content_type=JSON, body=body, headers=headers)


def build_app(
    runtime: Callable[[], IdempotentIngest], settings: Callable[[], IngestSettings]
) -> APIGatewayHttpResolver:
    """The HTTP API. ``runtime`` and ``settings`` are cached factories, called on first use, not at import."""
    app = APIGatewayHttpResolver()

    def cid() -> str:
        return str(app.context.get("correlation_id") or "")

    def with_correlation_id(router: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
        given = correlation_id(router.current_event)
        logger.set_correlation_id(given)
        router.append_context(correlation_id=given)  # type: ignore[no-untyped-call]
        return next_middleware(router)

    app.use(middlewares=[with_correlation_id])

    @app.route(POST_NOTIFICATION.rule, POST_NOTIFICATION.method)
    def post_notification() -> Response[str]:
        event = app.current_event
        request = parse_notification(event, settings().max_body_bytes)
        key = idempotency_key(event, request)
        outcome = runtime().accept(request, key, cid(), app.lambda_context)
        headers = {CORRELATION_ID_HEADER: cid(), LOCATION_HEADER: f"/v1/notifications/{request.id}"}
        if outcome.replayed:
            headers[REPLAYED_HEADER] = "true"
            metrics.add_metric(name="IdempotentReplays", unit="Count", value=1)
        logger.info(
            "notification accepted",
            notification_id=str(request.id),
            order_id=request.purchase.order_id,
            replayed=outcome.replayed,
        )
        return _json_response(POST_NOTIFICATION.success, outcome.accepted.model_dump_json(), headers)

    @app.route(GET_NOTIFICATION.rule, GET_NOTIFICATION.method)
    def get_notification(**path: str) -> Response[str]:
        try:
            notification_id = UUID(path["id"])
        except ValueError as exc:
            raise ApiError(INVALID_ID, "the id must be a UUID") from exc
        status = runtime().service.status_of(notification_id)
        if status is None:
            raise ApiError(NOT_FOUND, f"no notification {notification_id}")
        return _json_response(GET_NOTIFICATION.success, status.model_dump_json(), {CORRELATION_ID_HEADER: cid()})

    def error(err: ApiError) -> Response[str]:
        body = ErrorBody(error=ErrorInfo(code=err.kind.code, message=err.message, details=err.details))
        headers = {CORRELATION_ID_HEADER: cid() or correlation_id(app.current_event), **err.headers}
        return _json_response(err.kind.status, body.model_dump_json(), headers)

    def retry_after() -> dict[str, str]:
        return {RETRY_AFTER_HEADER: str(settings().retry_after_seconds)}

    @app.exception_handler(ApiError)
    def api_error(exc: ApiError) -> Response[str]:
        return error(exc)

    @app.exception_handler(IdempotencyKeyReusedError)
    def key_reused(_: IdempotencyKeyReusedError) -> Response[str]:
        return error(ApiError(KEY_REUSED))

    @app.exception_handler(RequestInFlightError)
    def in_flight(_: RequestInFlightError) -> Response[str]:
        return error(ApiError(REQUEST_IN_FLIGHT, headers={RETRY_AFTER_HEADER: str(IN_FLIGHT_RETRY_AFTER_SECONDS)}))

    @app.exception_handler(BrokerUnavailableError)
    def broker_down(exc: BrokerUnavailableError) -> Response[str]:
        logger.warning("broker unavailable, answering 503", reason=str(exc))
        metrics.add_metric(name="BrokerUnavailable", unit="Count", value=1)
        return error(ApiError(BROKER_UNAVAILABLE, headers=retry_after()))

    @app.exception_handler(StoreUnavailableError)
    def store_down(exc: StoreUnavailableError) -> Response[str]:
        logger.warning("store unavailable, answering 503", reason=str(exc))
        return error(ApiError(STORE_UNAVAILABLE, headers=retry_after()))

    @app.exception_handler(Exception)
    def unexpected(exc: Exception) -> Response[str]:
        logger.exception("unexpected error, answering 500", error_type=type(exc).__name__)
        return error(ApiError(INTERNAL_ERROR))

    @app.not_found
    def no_route(_: Exception) -> Response[str]:
        event = app.current_event
        path, method = event.path, event.http_method.upper()
        allowed = [op.method for op in OPERATIONS if op.matches(path)]
        if not allowed:
            return error(ApiError(ROUTE_NOT_FOUND, "no such route"))
        if method in allowed:
            # The path has the route's shape but the router could not read its parameter.
            return error(ApiError(INVALID_ID, "the id must be a UUID"))
        return error(ApiError(METHOD_NOT_ALLOWED, headers={ALLOW_HEADER: ", ".join(allowed)}))

    return app
