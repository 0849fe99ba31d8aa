"""The committed OpenAPI document is current, valid OpenAPI 3.1, and describes everything the API can answer."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from openapi_spec_validator import validate

from devstack.apigw import template_routes
from notifications import http_api
from notifications.http_api import openapi_json
from tests.support import sample_request

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
POST = ("/v1/notifications", "post")
GET = ("/v1/notifications/{id}", "get")
ERRORS = {POST: http_api.POST_ERRORS, GET: http_api.GET_ERRORS}


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(DOCUMENT.read_text())


def test_the_committed_document_is_up_to_date():
    assert DOCUMENT.read_text() == openapi_json(), (
        "docs/openapi.json is out of date: run `python -m notifications.http_api > docs/openapi.json`"
    )


def test_it_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_paths_are_exactly_the_routes_api_gateway_sends(document):
    routes = {(route.path, route.method.lower()) for route in template_routes()}
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == routes == {POST, GET}


@pytest.mark.parametrize(
    ("route", "statuses"),
    [
        (POST, {"202", "400", "401", "409", "413", "415", "422", "429", "500", "503"}),
        (GET, {"200", "400", "401", "404", "500", "503"}),
    ],
)
def test_every_status_the_operation_can_answer_is_documented(document, route, statuses):
    path, method = route
    assert set(document["paths"][path][method]["responses"]) == statuses


def test_every_error_code_of_each_operation_is_documented_under_its_status(document):
    for (path, method), errors in ERRORS.items():
        responses = document["paths"][path][method]["responses"]
        for kind in errors:
            schema = responses[str(kind.status.value)]["content"]["application/json"]["schema"]
            assert kind.code in schema["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"]


def test_every_declared_error_kind_is_reachable_from_an_operation_or_is_the_405():
    declared = set(http_api.ErrorKind)
    used = {kind for errors in ERRORS.values() for kind in errors}
    # A method a path does not offer has no operation to document it under; the document's description names it.
    assert declared - used == {http_api.ErrorKind.METHOD_NOT_ALLOWED}
    assert "405" in json.loads(openapi_json())["info"]["description"]


def test_headers_are_documented(document):
    post = document["paths"]["/v1/notifications"]["post"]
    # Header names are case-insensitive (RFC 9110, section 5.1); Powertools documents them in lower case.
    assert {p["name"].lower() for p in post["parameters"]} == {"idempotency-key", "x-correlation-id"}
    accepted = post["responses"]["202"]["headers"]
    assert {"X-Correlation-Id", "Location", "Idempotent-Replayed"} <= set(accepted)
    assert accepted["Idempotent-Replayed"]["required"] is False
    assert post["responses"]["503"]["headers"]["Retry-After"]["required"] is True
    assert post["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    assert post["responses"]["409"]["headers"]["Retry-After"]["required"] is False
    for path_item in document["paths"].values():
        for operation in path_item.values():
            for response in operation["responses"].values():
                assert response["headers"]["X-Correlation-Id"]["required"] is True


def test_every_operation_is_authenticated_by_iam_or_by_jwt_with_its_scope(document):
    # Given the schemes the deployment chooses from (template.yaml's AuthMode)
    schemes = document["components"]["securitySchemes"]
    assert schemes["iam"] | {"description": None} == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": None,
    }
    assert (schemes["jwt"]["type"], schemes["jwt"]["scheme"], schemes["jwt"]["bearerFormat"]) == (
        "http",
        "bearer",
        "JWT",
    )
    # Then each operation takes either, JWT with the scope of its kind: sending or reading
    scopes = {POST: http_api.SEND_SCOPE, GET: http_api.READ_SCOPE}
    for (path, method), scope in scopes.items():
        assert document["paths"][path][method]["security"] == [{"iam": []}, {"jwt": [scope]}]
        assert scope in schemes["jwt"]["description"]
    assert (http_api.SEND_SCOPE, http_api.READ_SCOPE) == ("notifications/send", "notifications/read")


def test_401_and_429_are_described(document):
    post = document["paths"]["/v1/notifications"]["post"]["responses"]
    assert "`unauthenticated`" in post["401"]["description"]
    assert "`quota_exceeded`" in post["429"]["description"]
    assert "`notification_id_reused`" in post["409"]["description"]
    assert "`unauthenticated`" in document["paths"]["/v1/notifications/{id}"]["get"]["responses"]["401"]["description"]


def _request_validator(document: dict) -> jsonschema.Draft202012Validator:
    schema = {"$ref": "#/components/schemas/NotificationRequest", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_the_request_schema_accepts_what_the_model_accepts(document):
    validator = _request_validator(document)
    without_channels = sample_request(customer={"id": "c", "name": "Bo", "phone": "+4915112345678"})
    del without_channels["channels"]
    for body in (sample_request(), sample_request(channels=["email"]), without_channels):
        assert list(validator.iter_errors(body)) == []


@pytest.mark.parametrize(
    "change",
    [
        {"channels": ["sms", "sms"]},
        {"channels": ["sms"], "customer": {"id": "c", "name": "Ada", "email": "ada@example.com"}},
        {"channels": ["email"], "customer": {"id": "c", "name": "Ada", "email": None}},
        {"channels": None, "customer": {"id": "c", "name": "Ada"}},
        {"customer": {"id": "c", "name": "Ada", "email": "ada@example.com", "phone": "+49 151"}},
        {"purchase": {**sample_request()["purchase"], "total": "49,90"}},
        {"purchase": {**sample_request()["purchase"], "currency": "XXY"}},
        {"locale": "fr"},
    ],
)
def test_the_request_schema_rejects_what_the_model_rejects(document, change):
    assert list(_request_validator(document).iter_errors(sample_request(**change))) != []
