"""The OpenAPI 3.1 document of the ingest API, built from the code.

Paths and operations come from the route table (``http_api.OPERATIONS``), error answers from the error
catalogue each operation declares, bodies from the pydantic models' JSON schemas. The one thing JSON Schema
cannot read off the models, the request's cross-field rules, is derived from the same table the model
validator uses (``models.customer_addressed()``).

Regenerate the committed copy with::

    python -m notifications.openapi > docs/openapi.json

Not imported by any function at run time: the document costs nothing at cold start.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from http import HTTPStatus
from typing import Any

from pydantic.json_schema import JsonSchemaMode, models_json_schema

from notifications import http_api
from notifications.http_api import ErrorBody, ErrorKind, Operation
from notifications.models import Accepted, NotificationRequest, NotificationStatus, customer_addressed

API_VERSION = "1.0.0"
REF = "#/components/schemas/{model}"
_SUCCESS_MODELS: dict[str, type[Accepted | NotificationStatus]] = {
    http_api.POST_NOTIFICATION.operation_id: Accepted,
    http_api.GET_NOTIFICATION.operation_id: NotificationStatus,
}

_HEADERS: dict[str, dict[str, Any]] = {
    http_api.CORRELATION_ID_HEADER: {
        "description": "The caller's X-Correlation-Id, or a new id when none (or an unusable one) was sent. "
        "Carried in the Kafka record headers and every log line.",
        "schema": {"type": "string", "pattern": http_api.CORRELATION_ID_PATTERN},
    },
    http_api.RETRY_AFTER_HEADER: {
        "description": "Seconds to wait before retrying with the same idempotency key.",
        "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"},
    },
    http_api.REPLAYED_HEADER: {
        "description": "Present on a replay: the answer is the first 202 for this idempotency key; nothing "
        "new was published.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    http_api.LOCATION_HEADER: {
        "description": "Where the notification's status can be read.",
        "schema": {"type": "string", "pattern": "^/v1/notifications/[0-9a-f-]{36}$"},
    },
}


def _header(name: str, *, required: bool) -> dict[str, Any]:
    return {**_HEADERS[name], "required": required}


def _schemas() -> dict[str, Any]:
    models: list[tuple[type[Any], JsonSchemaMode]] = [
        (NotificationRequest, "validation"),
        (Accepted, "serialization"),
        (NotificationStatus, "serialization"),
        (ErrorBody, "serialization"),
    ]
    _, top = models_json_schema(models, ref_template=REF)
    schemas: dict[str, Any] = top["$defs"]
    schemas["NotificationRequest"]["allOf"] = _request_rules()
    return dict(sorted(schemas.items()))


def _string_field(field: str) -> dict[str, Any]:
    return {"required": [field], "properties": {field: {"type": "string"}}}


def _request_rules() -> list[dict[str, Any]]:
    """What ``NotificationRequest._channels_have_addresses`` checks, in JSON Schema."""
    rules: list[dict[str, Any]] = [{"properties": {"channels": {"uniqueItems": True}}}]
    for channel, field in customer_addressed().items():
        rules.append(
            {
                "if": {
                    "required": ["channels"],
                    "properties": {"channels": {"type": "array", "contains": {"const": channel}}},
                },
                "then": {"properties": {"customer": _string_field(field)}},
            }
        )
    rules.append(
        {
            "if": {"not": {"required": ["channels"], "properties": {"channels": {"type": "array"}}}},
            "then": {"properties": {"customer": {"anyOf": [_string_field(f) for f in customer_addressed().values()]}}},
        }
    )
    return rules


def _request_description() -> str:
    addressed = ", ".join(f"`{ch.value}` needs `customer.{field}`" for ch, field in customer_addressed().items())
    return (
        "A purchase to notify. Money is a decimal string, never a number. `channels` lists each channel at most "
        f"once; {addressed}. Without `channels`, every channel the customer has an address for is used (at least "
        "one is needed). The body may be at most 64 KiB. The idempotency key is the `Idempotency-Key` header, or "
        "else the body's `id`."
    )


def _error_response(kinds: list[ErrorKind]) -> dict[str, Any]:
    codes = [kind.code for kind in kinds]
    headers: dict[str, Any] = {http_api.CORRELATION_ID_HEADER: _header(http_api.CORRELATION_ID_HEADER, required=True)}
    for name in dict.fromkeys(h for kind in kinds for h in kind.headers):
        headers[name] = _header(name, required=all(name in kind.headers for kind in kinds))
    return {
        "description": " ".join(f"`{kind.code}`: {kind.description}" for kind in kinds),
        "headers": headers,
        "content": {
            http_api.JSON: {
                "schema": {
                    "allOf": [
                        {"$ref": REF.format(model="ErrorBody")},
                        {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
                    ]
                }
            }
        },
    }


def _operation(op: Operation) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [{"$ref": "#/components/parameters/CorrelationId"}]
    for name in (part[1:-1] for part in op.path.split("/") if part.startswith("{")):
        parameters.insert(
            0,
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": "The notification id.",
                "schema": {"type": "string", "format": "uuid"},
            },
        )
    success_headers: dict[str, Any] = {
        http_api.CORRELATION_ID_HEADER: _header(http_api.CORRELATION_ID_HEADER, required=True)
    }
    body: dict[str, Any] | None = None
    if op is http_api.POST_NOTIFICATION:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
        success_headers[http_api.LOCATION_HEADER] = _header(http_api.LOCATION_HEADER, required=True)
        success_headers[http_api.REPLAYED_HEADER] = _header(http_api.REPLAYED_HEADER, required=False)
        body = {
            "required": True,
            "description": _request_description(),
            "content": {http_api.JSON: {"schema": {"$ref": REF.format(model="NotificationRequest")}}},
        }
    by_status: dict[HTTPStatus, list[ErrorKind]] = defaultdict(list)
    for kind in op.errors:
        by_status[kind.status].append(kind)
    responses: dict[str, Any] = {
        str(op.success.value): {
            "description": op.success.phrase,
            "headers": success_headers,
            "content": {
                http_api.JSON: {"schema": {"$ref": REF.format(model=_SUCCESS_MODELS[op.operation_id].__name__)}}
            },
        }
    }
    for status in sorted(by_status):
        responses[str(status.value)] = _error_response(by_status[status])
    operation: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "parameters": parameters}
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = responses
    return operation


def build_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in http_api.OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Purchase notifications",
            "version": API_VERSION,
            "description": "Accept a purchase notification durably (202 only after Kafka acknowledged it with "
            "acks=all) and read each channel's delivery status. Every error is JSON "
            '`{"error": {"code", "message", "details"}}` with a machine-readable `code`. A method a path does not '
            "offer answers 405 with an `Allow` header.",
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "parameters": {
                "IdempotencyKey": {
                    "name": http_api.IDEMPOTENCY_KEY_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "Deduplicates client retries; defaults to the body's `id`. Reusing a key with "
                    "another payload answers 409.",
                    "schema": {"type": "string", "pattern": http_api.IDEMPOTENCY_KEY_PATTERN},
                },
                "CorrelationId": {
                    "name": http_api.CORRELATION_ID_HEADER,
                    "in": "header",
                    "required": False,
                    "description": f"Echoed back and carried to Kafka when 1-{http_api.MAX_CORRELATION_ID_LENGTH} "
                    "visible ASCII characters; otherwise a new id is generated (never an error).",
                    "schema": {"type": "string"},
                },
            },
        },
    }


def render() -> str:
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
