"""HTTP side of ingest. Powertools routes, validates (path, headers, body) and documents it: ``python -m
notifications.http_api > docs/openapi.json``. This module keeps the one JSON error contract: every error answers
``{"error": {"code", "message", "details"}}`` with ``X-Correlation-Id``; each kind is declared in ``ErrorKind``.

Every route needs a caller (``notifications.callers``): API Gateway authenticates (IAM, or JWT with the route's
scope), and a request whose event names no caller answers 401 before anything else is looked at."""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path
from pydantic import BaseModel, BeforeValidator, GetPydanticSchema

from notifications.callers import Caller, caller_of
from notifications.contracts.api import Accepted, NotificationRequest
from notifications.contracts.status_view import NotificationStatus
from notifications.errors import BrokerUnavailableError
from notifications.ingest import (
    DestinationMissingError,
    IdempotencyKeyReusedError,
    NotificationIdReusedError,
    RequestInFlightError,
    StoreUnavailableError,
)
from notifications.observability import CORRELATION_ID_PATTERN, logger, metrics, usable_correlation_id
from notifications.quotas import QuotaExceededError
from notifications.registry import customer_addressed

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
    from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
    from pydantic import GetJsonSchemaHandler
    from pydantic_core import CoreSchema

    from notifications.ingest import IdempotentIngest
    from notifications.settings import IngestSettings

COLLECTION, ITEM = "/v1/notifications", "/v1/notifications/<id>"
CORRELATION_ID, IDEMPOTENCY_KEY, REPLAYED = "X-Correlation-Id", "Idempotency-Key", "Idempotent-Replayed"
RETRY_AFTER, LOCATION, ALLOW, JSON = "Retry-After", "Location", "Allow", "application/json"
MAX_KEY_LENGTH, MAX_CORRELATION_ID_LENGTH, IN_FLIGHT_RETRY_AFTER_SECONDS = 255, 128, 1
# Visible ASCII, inner spaces allowed, no leading or trailing blank: safe in HTTP and Kafka headers and in logs.
IDEMPOTENCY_KEY_PATTERN = rf"^[!-~](?:[ -~]{{0,{MAX_KEY_LENGTH - 2}}}[!-~])?$"
# The JWT scope each route requires (template.yaml: the JwtAuthorizer's scopes per route; Amazon Cognito style).
SEND_SCOPE, READ_SCOPE = "notifications/send", "notifications/read"
IAM_SCHEME, JWT_SCHEME = "iam", "jwt"


class ErrorKind(Enum):
    """Each kind of error answer: status, description, headers it carries. Its code is its name in lower case."""

    MALFORMED_JSON = 400, "The body is not valid JSON (or not valid base64)."
    INVALID_IDEMPOTENCY_KEY = 400, f"The Idempotency-Key header is not 1-{MAX_KEY_LENGTH} visible ASCII characters."
    INVALID_ID = 400, "The notification id in the path is not a UUID."
    UNAUTHENTICATED = 401, "The request names no caller (an IAM principal, or a JWT issuer and subject)."
    NOT_FOUND = 404, "The caller has no notification with this id."
    ROUTE_NOT_FOUND = 404, "No route has this path."
    METHOD_NOT_ALLOWED = 405, "The path exists for other methods.", (ALLOW,)
    IDEMPOTENCY_KEY_REUSED = 409, "The idempotency key was already used with a different payload."
    NOTIFICATION_ID_REUSED = 409, "The notification id was already used with a different payload (whatever the key)."
    REQUEST_IN_FLIGHT = 409, "A request with this key is still in progress; retry after Retry-After.", (RETRY_AFTER,)
    PAYLOAD_TOO_LARGE = 413, "The body is larger than the limit (64 KiB by default)."
    UNSUPPORTED_MEDIA_TYPE = 415, "The body is not sent as application/json."
    VALIDATION_FAILED = 422, "Fields are invalid; `details` names each one."
    QUOTA_EXCEEDED = (
        429,
        "A quota (the caller's, or a recipient's) is used up: NOT accepted; retry after Retry-After.",
        (RETRY_AFTER,),
    )
    INTERNAL_ERROR = 500, "An unexpected error; retry later."
    BROKER_UNAVAILABLE = 503, "Kafka did not acknowledge it: NOT accepted; retry after Retry-After.", (RETRY_AFTER,)
    STORE_UNAVAILABLE = 503, "The idempotency or status store did not answer; retry after Retry-After.", (RETRY_AFTER,)

    def __init__(self, status: int, description: str, headers: tuple[str, ...] = ()) -> None:
        self.status, self.description, self.headers = HTTPStatus(status), description, headers
        self.code = self.name.lower()


E = ErrorKind
GET_ERRORS = (E.INVALID_ID, E.UNAUTHENTICATED, E.NOT_FOUND, E.ROUTE_NOT_FOUND, E.INTERNAL_ERROR, E.STORE_UNAVAILABLE)
POST_ERRORS = tuple(kind for kind in E if kind.status not in (404, 405) and kind is not E.INVALID_ID)


class ErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = []


class ErrorBody(BaseModel):
    error: ErrorInfo


@dataclass
class ApiError(Exception):
    kind: ErrorKind
    message: str | None = None
    details: list[ErrorDetail] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


def _error_body(kinds: list[ErrorKind]) -> Any:
    """In the document: ``ErrorBody`` whose ``code`` is one of these kinds'."""
    codes = {"properties": {"error": {"properties": {"code": {"enum": [kind.code for kind in kinds]}}}}}
    return Annotated[ErrorBody, GetPydanticSchema(get_pydantic_json_schema=lambda s, h: {"allOf": [h(s), codes]})]


def _cross_field_rules(schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
    """In the document: what ``NotificationRequest._channels_have_addresses`` checks, from ``customer_addressed()``."""
    has = {f: {"required": [f], "properties": {f: {"type": "string"}}} for f in customer_addressed().values()}
    listed = {"required": ["channels"], "properties": {"channels": {"type": "array"}}}
    rules: list[dict[str, Any]] = [{"properties": {"channels": {"uniqueItems": True}}}]
    for channel, address in customer_addressed().items():
        contains = {"properties": {"channels": {"contains": {"const": channel}}}}
        rules.append({"if": {"allOf": [listed, contains]}, "then": {"properties": {"customer": has[address]}}})
    rules.append({"if": {"not": listed}, "then": {"properties": {"customer": {"anyOf": list(has.values())}}}})
    handler.resolve_ref_schema(ref := handler(schema))["allOf"] = rules
    return ref


def _strict_json(body: object) -> object:
    """The JSON text, validated strictly (Powertools would validate ``json.loads``' dict, which is lax)."""
    return NotificationRequest.model_validate_json(body, strict=True) if isinstance(body, str) else body


_REQUEST = "A purchase to notify (at most 64 KiB); money is a decimal string. Its `id` is the default idempotency key."
_RULES = GetPydanticSchema(get_pydantic_json_schema=_cross_field_rules)
RequestBody = Annotated[NotificationRequest, BeforeValidator(_strict_json), _RULES, Body(description=_REQUEST)]
_KEY = "Deduplicates client retries (default: the body's `id`). Reusing a key with another payload answers 409."
KeyHeader = Annotated[str | None, Header(alias=IDEMPOTENCY_KEY, pattern=IDEMPOTENCY_KEY_PATTERN, description=_KEY)]
_CID = "Echoed and carried to Kafka when a token of 1-128 letters, digits and ._:-; else a new id (never an error)."
CorrelationIdHeader = Annotated[str | None, Header(alias=CORRELATION_ID, description=_CID)]  # cid() reads it
NotificationId = Annotated[UUID, Path(description="The notification id.")]
_HEADERS = {  # each answer header: what it is, the pattern of its value
    CORRELATION_ID: ("The caller's usable X-Correlation-Id, else a new id.", CORRELATION_ID_PATTERN),
    RETRY_AFTER: ("Seconds to wait before retrying the same request.", "^[1-9][0-9]*$"),
    REPLAYED: ("On a replay: the first 202 for this key again; nothing new was published.", "^true$"),
    LOCATION: ("Where the notification's status can be read.", "^/v1/notifications/[0-9a-f-]{36}$"),
}


def _headers(*required: str, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    names = {CORRELATION_ID: True} | dict.fromkeys(required, True) | dict.fromkeys(optional, False)
    docs = {n: {"description": d, "schema": {"type": "string", "pattern": p}} for n, (d, p) in _HEADERS.items()}
    return {name: docs[name] | {"required": is_required} for name, is_required in names.items()}


def responses(ok: HTTPStatus, model: type[BaseModel], headers: dict[str, Any], errors: tuple[ErrorKind, ...]) -> Any:
    """A route's ``responses=``: its success, and per status the error codes it can answer and their headers."""
    documented = {ok: {"description": ok.phrase, "headers": headers, "content": {JSON: {"model": model}}}}
    for status in sorted({kind.status for kind in errors}):
        kinds = [kind for kind in errors if kind.status == status]
        always = {h: all(h in k.headers for k in kinds) for kind in kinds for h in kind.headers}
        documented[status] = {
            "description": " ".join(f"`{kind.code}`: {kind.description}" for kind in kinds),
            "headers": _headers(*(h for h in always if always[h]), optional=tuple(h for h in always if not always[h])),
            "content": {JSON: {"model": _error_body(kinds)}},
        }
    return documented


def _as_api_error(exc: Exception, event: BaseProxyEvent, settings: Callable[[], IngestSettings]) -> ApiError:  # noqa: PLR0911
    """Each typed error as the contract's kind of error: here and nowhere else."""
    match exc:
        case ApiError():
            return exc
        case RequestValidationError():
            return _invalid(exc)
        case NotFoundError():
            return _no_route(event.path, event.http_method.upper())
        case DestinationMissingError():
            return _no_destination(exc.channels)
        case IdempotencyKeyReusedError():
            return ApiError(E.IDEMPOTENCY_KEY_REUSED)
        case NotificationIdReusedError():
            return ApiError(E.NOTIFICATION_ID_REUSED)
        case QuotaExceededError():
            logger.info("quota exceeded, answering 429", quota=exc.quota.name, retry_after=exc.retry_after)
            metrics.add_metric(name="QuotaExceeded", unit="Count", value=1)
            return ApiError(E.QUOTA_EXCEEDED, str(exc), headers={RETRY_AFTER: str(exc.retry_after)})
        case RequestInFlightError():
            return ApiError(E.REQUEST_IN_FLIGHT, headers={RETRY_AFTER: str(IN_FLIGHT_RETRY_AFTER_SECONDS)})
        case BrokerUnavailableError():
            logger.warning("broker unavailable, answering 503", reason=str(exc))
            metrics.add_metric(name="BrokerUnavailable", unit="Count", value=1)
            return ApiError(E.BROKER_UNAVAILABLE, headers={RETRY_AFTER: str(settings().retry_after_seconds)})
        case StoreUnavailableError():
            logger.warning("store unavailable, answering 503", reason=str(exc))
            return ApiError(E.STORE_UNAVAILABLE, headers={RETRY_AFTER: str(settings().retry_after_seconds)})
    logger.exception("unexpected error, answering 500", error_type=type(exc).__name__)
    return ApiError(E.INTERNAL_ERROR)


def _no_destination(channels: list[str]) -> ApiError:
    """A 422 on ``channels``, one detail per channel the caller has no destination for."""
    details = [
        ErrorDetail(
            loc=["channels"],
            msg=f"channel '{channel}': this caller has no {channel} destination (an operator sets it up)",
            type="destination_missing",
        )
        for channel in channels
    ]
    return ApiError(E.VALIDATION_FAILED, f"no destination for {', '.join(channels)}", details)


def _invalid(exc: RequestValidationError) -> ApiError:
    """Powertools' validation errors as the contract's: body first (as JSON, then fields), then path, then header."""
    body = [err for err in exc.errors() if err["loc"][0] == "body"]
    if any(err["type"] in ("json_invalid", "missing") and len(err["loc"]) == 1 for err in body):
        return ApiError(E.MALFORMED_JSON, "the body is not valid JSON")
    if body:
        details = [ErrorDetail(loc=list(err["loc"][1:]), msg=err["msg"], type=err["type"]) for err in body]
        return ApiError(E.VALIDATION_FAILED, "the request has invalid fields", details=details)
    return ApiError(E.INVALID_ID if any(err["loc"][0] == "path" for err in exc.errors()) else E.INVALID_IDEMPOTENCY_KEY)


def _no_route(path: str, method: str) -> ApiError:
    allowed = "POST" if path == COLLECTION else "GET" if re.fullmatch(f"{COLLECTION}/[^/]+", path) else None
    if allowed is None:
        return ApiError(E.ROUTE_NOT_FOUND, "no such route")
    if method == allowed:  # the path has the route's shape but the router could not read its id
        return ApiError(E.INVALID_ID, "the id must be a UUID")
    return ApiError(E.METHOD_NOT_ALLOWED, headers={ALLOW: allowed})


def authenticated(router: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """The request's caller from the authorizer context, kept for the route and named in every log line."""
    if (found := caller_of(router.current_event)) is None:
        raise ApiError(E.UNAUTHENTICATED, "no caller: the authorizer context names no IAM principal or JWT subject")
    logger.append_keys(caller=found.id)
    router.append_context(caller=found)  # type: ignore[no-untyped-call]
    return next_middleware(router)


def _caller(router: APIGatewayHttpResolver) -> Caller:
    """The caller ``authenticated`` found for this request."""
    return router.context["caller"]  # type: ignore[no-any-return]


def build_app(
    runtime: Callable[[], IdempotentIngest], settings: Callable[[], IngestSettings]
) -> APIGatewayHttpResolver:
    """The HTTP API. ``runtime`` and ``settings`` are cached factories, called on first use, not at import.
    Each route names its middlewares: the caller first (401), then the body checks (POST), then Powertools'
    validation (GET's one input is a path id: 400 when bad)."""
    # The body reaches ``RequestBody`` as text: it parses the JSON itself (``_strict_json``).
    app = APIGatewayHttpResolver(json_body_deserializer=lambda text: text)  # type: ignore[arg-type,return-value]

    def cid() -> str:
        """The caller's usable ``X-Correlation-Id``, else a new one: chosen once per request, set on the logger."""
        if "correlation_id" not in app.context:
            chosen = usable_correlation_id(app.current_event.headers.get(CORRELATION_ID.lower()))
            logger.set_correlation_id(chosen)
            app.append_context(correlation_id=chosen)  # type: ignore[no-untyped-call]
        return str(app.context["correlation_id"])

    def json_within_limit(router: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
        """The body checks Powertools cannot make before it parses the body (its validation precedes middlewares)."""
        event, limit = router.current_event, settings().max_body_bytes
        if (event.headers.get("content-type") or "").split(";")[0].strip() != JSON:
            raise ApiError(E.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
        raw = (event.body or "").encode("utf-8", "surrogatepass")
        if event.is_base64_encoded:
            try:
                raw = base64.b64decode(raw, validate=True)
            except ValueError as exc:
                raise ApiError(E.MALFORMED_JSON, "the body is not valid base64") from exc
        if len(raw) > limit:
            raise ApiError(E.PAYLOAD_TOO_LARGE, f"the body is {len(raw)} bytes; the limit is {limit}")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(E.MALFORMED_JSON, "the body is not UTF-8") from exc
        return next_middleware(router)

    @app.post(
        COLLECTION,
        operation_id="createNotification",
        summary="Accept a purchase notification (202 only once Kafka acknowledged it with acks=all).",
        responses=responses(HTTPStatus.ACCEPTED, Accepted, _headers(LOCATION, optional=(REPLAYED,)), POST_ERRORS),
        security=[{IAM_SCHEME: []}, {JWT_SCHEME: [SEND_SCOPE]}],
        enable_validation=False,  # Powertools' validation runs as a middleware, after the caller and the body checks
        middlewares=[authenticated, json_within_limit, OpenAPIRequestValidationMiddleware()],  # type: ignore[no-untyped-call]
    )
    def post_notification(request: RequestBody, key: KeyHeader = None, _: CorrelationIdHeader = None) -> Response[str]:
        correlation_id = cid()
        outcome = runtime().accept(request, _caller(app).id, key or str(request.id), correlation_id, app.lambda_context)
        headers = {CORRELATION_ID: correlation_id, LOCATION: f"{COLLECTION}/{request.id}"}
        if outcome.replayed:
            headers[REPLAYED] = "true"
            metrics.add_metric(name="IdempotentReplays", unit="Count", value=1)
        order_id, replayed = request.purchase.order_id, outcome.replayed
        logger.info("notification accepted", notification_id=str(request.id), order_id=order_id, replayed=replayed)
        return Response(HTTPStatus.ACCEPTED, JSON, outcome.accepted.model_dump_json(), headers)

    @app.get(
        ITEM,
        operation_id="getNotification",
        summary="The delivery status of each channel of a notification.",
        responses=responses(HTTPStatus.OK, NotificationStatus, _headers(), GET_ERRORS),
        security=[{IAM_SCHEME: []}, {JWT_SCHEME: [READ_SCOPE]}],
        enable_validation=False,  # as for POST: the caller first, then Powertools' validation
        middlewares=[authenticated, OpenAPIRequestValidationMiddleware()],  # type: ignore[no-untyped-call]
    )
    def get_notification(id: NotificationId, _: CorrelationIdHeader = None) -> Response[str]:
        correlation_id = cid()
        # Another caller's notification is not there for this one: 404, as for an id nobody used.
        if (status := runtime().service.status_of(_caller(app).id, id)) is None:
            raise ApiError(E.NOT_FOUND, f"no notification {id}")
        return Response(HTTPStatus.OK, JSON, status.model_dump_json(), {CORRELATION_ID: correlation_id})

    @app.exception_handler(Exception)  # every error, NotFoundError (no route) included
    def answer_error(exc: Exception) -> Response[str]:
        correlation_id = cid()
        err = _as_api_error(exc, app.current_event, settings)
        info = ErrorInfo(code=err.kind.code, message=err.message or err.kind.description, details=err.details)
        headers = {CORRELATION_ID: correlation_id, **err.headers}
        return Response(err.kind.status, JSON, ErrorBody(error=info).model_dump_json(), headers)

    return app


_ABOUT = (
    "Every error is JSON with a machine-readable `error.code`; a method a path lacks answers 405 with `Allow`. "
    "Every request is authenticated by API Gateway (the deployment's AuthMode: IAM or JWT) and belongs to its "
    "caller: notification ids and idempotency keys live in the caller's namespace, a caller never sees another's "
    "notifications, and quotas per caller and per recipient answer 429 with `Retry-After`."
)


def security_schemes() -> dict[str, Any]:
    """The two ways a deployment authenticates callers (template.yaml's AuthMode), as the document names them."""
    # Powertools' OpenAPI models take long to import: only the document needs them, not the handler.
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, HTTPBearer  # noqa: PLC0415

    iam = (
        "AuthMode IAM: a request signed with AWS Signature Version 4 (the caller is the signing IAM principal; an "
        "assumed role is one caller whatever its session). Needs execute-api:Invoke on the route."
    )
    jwt = (
        "AuthMode JWT: an access token of the configured issuer and audience; the caller is its issuer and subject "
        f"(`sub`, else `client_id`). POST needs the scope `{SEND_SCOPE}`, GET `{READ_SCOPE}`."
    )
    return {
        IAM_SCHEME: APIKey.model_validate(
            {"type": "apiKey", "in": "header", "name": "Authorization", "description": iam}
        ),
        JWT_SCHEME: HTTPBearer(bearerFormat="JWT", description=jwt),
    }


def openapi_json() -> str:
    """The published OpenAPI document, generated by Powertools from the routes (it never calls the factories)."""
    app = build_app(NotImplemented, NotImplemented)
    document = app.get_openapi_json_schema(
        title="Purchase notifications", version="1.0.0", description=_ABOUT, security_schemes=security_schemes()
    )
    return document + "\n"


if __name__ == "__main__":
    sys.stdout.write(openapi_json())
