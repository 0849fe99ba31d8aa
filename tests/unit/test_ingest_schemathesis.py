"""Property-based run of the committed OpenAPI document against the ingest handler, in process.

Schemathesis generates requests from ``docs/openapi.json`` (valid and invalid ones, unsupported methods, missing
headers); a small WSGI adapter turns each into the API Gateway HTTP API (payload 2.0) event Lambda would get and
calls ``ingest_handler.handler`` on moto's DynamoDB with an in-memory publisher. Every answer must be documented
(status, headers, body schema) and none may be a 5xx.

The adapter stands in for API Gateway's authorizer with one valid credential, ``TOKEN``: a request carrying it
reaches the function as the local caller, any other (none, or what Schemathesis makes up) with no caller at all.
Schemathesis sends ``TOKEN`` and, to check that authentication is enforced, requests without it or with another:
the function must answer those 401.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

import ingest_handler
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from devstack.apigw import ANONYMOUS, CALLER_HEADER, LOCAL_CALLER, http_api_event, http_result
from devstack.lambda_context import LocalLambdaContext
from notifications.runtime import ingest
from tests.support import MemoryPublisher, address_a_channel_refuses

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
TOKEN = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261121/us-east-1/execute-api/aws4_request"


def _event_from_environ(environ: dict[str, Any]) -> dict[str, Any]:
    """An HTTP API v2 event for one WSGI request: raw (percent-encoded) path, lower-case headers, the body."""
    raw_uri = environ.get("RAW_URI") or quote(environ.get("PATH_INFO", "/"))
    path = raw_uri.split("?", 1)[0]
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else None
    method, query = environ["REQUEST_METHOD"], environ.get("QUERY_STRING", "")
    headers[CALLER_HEADER] = LOCAL_CALLER if headers.get("authorization") == TOKEN else ANONYMOUS
    try:
        event = http_api_event(method, path, headers=headers, query=query, body=body)
    except UnicodeDecodeError:  # a "text" body that is not UTF-8: API Gateway passes it base64-encoded
        event = http_api_event(method, path, headers=headers, query=query, body=None)
        event["body"], event["isBase64Encoded"] = base64.b64encode(body or b"").decode(), True
    return event


class LambdaWsgiApp:
    """WSGI front of the Lambda handler, the way API Gateway fronts it."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], dict[str, Any]]) -> None:
        self.handler = handler

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        result = http_result(self.handler(_event_from_environ(environ), LocalLambdaContext("ingest")))
        start_response(f"{result.status} {HTTPStatus(result.status).phrase}", list(result.headers.items()))
        return [result.body]


APP = LambdaWsgiApp(ingest_handler.handler)
schema = schemathesis.openapi.from_path(DOCUMENT)
schema.app = APP
schema.config.generation.update(max_examples=100, deterministic=True)
AUTHENTICATED = {"Authorization": TOKEN}


@schema.hook
def filter_body(context: Any, body: Any) -> bool:
    """Leave out numbers the SMS fraud limits refuse: a 422 the document cannot describe (tests.support)."""
    return not address_a_channel_refuses(body)


@pytest.fixture
def handler_on_moto(moto_aws, monkeypatch: pytest.MonkeyPatch) -> MemoryPublisher:
    publisher = MemoryPublisher()
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: publisher)
    return publisher


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_documented_and_none_is_a_server_error(case, handler_on_moto):
    # Given a request generated from the document (valid or not)
    # When API Gateway hands it to the ingest function
    response = case.call(headers=AUTHENTICATED)
    # Then the answer is one the document describes, and never a 5xx (nor accepted without the credential)
    case.validate_response(response, headers=AUTHENTICATED)
    assert response.status_code < 500, response.text
