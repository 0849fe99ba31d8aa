"""Bad input, tried: each malformed request gets its documented status and code, and nothing reaches Kafka."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import ingest_handler
import pytest

from devstack.apigw import http_api_event, http_result
from devstack.aws_resources import IDEMPOTENCY_TABLE
from devstack.lambda_context import LocalLambdaContext
from notifications.runtime import ingest
from tests.support import MemoryPublisher, sample_request

JSON_HEADERS = {"content-type": "application/json"}


def body_with(path: str, value: Any, **changes: Any) -> str:
    """A valid request (``changes`` applied) with ``value`` set at the dotted ``path``."""
    body = sample_request(**changes)
    *parents, last = path.split(".")
    node: Any = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return json.dumps(body)


DELETE = object()


@dataclass(frozen=True)
class Bad:
    name: str
    status: int
    code: str
    body: str | bytes | None = None
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON_HEADERS))
    method: str = "POST"
    path: str = "/v1/notifications"
    base64_body: str | None = None  # sent as is with isBase64Encoded=true
    loc: tuple[Any, ...] | None = None  # where a 422 must point


def invalid(name: str, body: str, *loc: Any) -> Bad:
    """A 422 case whose single error points at ``loc`` (empty: a rule over several fields)."""
    return Bad(name, 422, "validation_failed", body=body, loc=loc)


VALID = json.dumps(sample_request())
ANY_ID = "0b6ef3a6-5d0b-4a38-9a31-2b1a7f3c8d11"
PHONE, EMAIL = ("customer", "phone"), ("customer", "email")
QUANTITY = ("purchase", "items", 0, "quantity")
PURCHASED_AT = ("purchase", "purchased_at")
COLLECTION = "/v1/notifications"


def bad_key(name: str, key: str) -> Bad:
    return Bad(name, 400, "invalid_idempotency_key", body=VALID, headers={**JSON_HEADERS, "idempotency-key": key})


CASES = [
    Bad("truncated JSON", 400, "malformed_json", body='{"id": "8f58c11d-'),
    Bad("empty body", 400, "malformed_json", body=""),
    Bad("JSON with a trailing comma", 400, "malformed_json", body='{"id": 1,}'),
    Bad("a lone surrogate escape", 400, "malformed_json", body=VALID.replace("Ada", "\\ud800")),
    Bad("body that is not UTF-8", 400, "malformed_json", base64_body=base64.b64encode(b'{"id": "\xff"}').decode()),
    Bad("body flagged base64 that is not", 400, "malformed_json", base64_body="not base64!"),
    Bad("text/plain", 415, "unsupported_media_type", body=VALID, headers={"content-type": "text/plain"}),
    Bad("no content type", 415, "unsupported_media_type", body=VALID, headers={}),
    Bad("form", 415, "unsupported_media_type", body="id=1", headers={"content-type": "multipart/form-data"}),
    Bad("over 64 KiB", 413, "payload_too_large", body=json.dumps({**sample_request(), "padding": "x" * 65536})),
    invalid("a JSON array", "[]"),
    invalid("a JSON string", '"hello"'),
    invalid("unknown channel", body_with("channels", ["email", "fax"]), "channels", 1),
    invalid("sms without a phone", body_with("customer.phone", DELETE, channels=["sms"])),
    invalid("email without an address", body_with("customer.email", None, channels=["email"])),
    invalid("no channel, no address", json.dumps(sample_request(channels=None, customer={"id": "c", "name": "Ada"}))),
    invalid("a channel twice", body_with("channels", ["email", "email"])),
    invalid("phone without +", body_with("customer.phone", "015112345678"), *PHONE),
    invalid("phone with spaces", body_with("customer.phone", "+49 151 12345678"), *PHONE),
    invalid("phone too short", body_with("customer.phone", "+49151"), *PHONE),
    invalid("phone with a trailing newline", body_with("customer.phone", "+4915112345678\n"), *PHONE),
    invalid("phone in Arabic-Indic digits", body_with("customer.phone", "+" + "\u0664\u0669\u0661" * 3), *PHONE),
    invalid("email without a domain", body_with("customer.email", "ada@"), *EMAIL),
    invalid("email without a dot in the domain", body_with("customer.email", "ada@localhost"), *EMAIL),
    invalid("email with a trailing newline", body_with("customer.email", "ada@example.com\n"), *EMAIL),
    invalid("quantity zero", body_with("purchase.items.0.quantity", 0), *QUANTITY),
    invalid("quantity negative", body_with("purchase.items.0.quantity", -2), *QUANTITY),
    invalid("quantity as a string", body_with("purchase.items.0.quantity", "2"), *QUANTITY),
    invalid("quantity fractional", body_with("purchase.items.0.quantity", 1.5), *QUANTITY),
    invalid("unknown currency", body_with("purchase.currency", "EURO"), "purchase", "currency"),
    invalid("lower-case currency", body_with("purchase.currency", "eur"), "purchase", "currency"),
    invalid("money as a JSON number", body_with("purchase.total", 49.9), "purchase", "total"),
    invalid("money with a decimal comma", body_with("purchase.total", "49,90"), "purchase", "total"),
    invalid("money negative", body_with("purchase.total", "-49.90"), "purchase", "total"),
    invalid("money in exponent form", body_with("purchase.total", "4.99e1"), "purchase", "total"),
    invalid("timestamp without a zone", body_with("purchase.purchased_at", "2026-11-21T10:00:00"), *PURCHASED_AT),
    invalid("timestamp as epoch seconds", body_with("purchase.purchased_at", 1795255200), *PURCHASED_AT),
    invalid("id that is not a UUID", body_with("id", "order-1001"), "id"),
    invalid("id missing", body_with("id", DELETE), "id"),
    invalid("unknown field", body_with("coupon", "FREE"), "coupon"),
    invalid("no items", body_with("purchase.items", []), "purchase", "items"),
    invalid("blank customer name", body_with("customer.name", "   "), "customer", "name"),
    invalid("unknown locale", body_with("locale", "fr"), "locale"),
    bad_key("Idempotency-Key too long", "k" * 256),
    bad_key("Idempotency-Key blank", ""),
    bad_key("Idempotency-Key with a leading space", " key-1"),
    bad_key("Idempotency-Key not ASCII", "schl\u00fcssel"),
    Bad("GET an id that is not a UUID", 400, "invalid_id", method="GET", path="/v1/notifications/12345", headers={}),
    Bad("GET an unknown id", 404, "not_found", method="GET", path=f"{COLLECTION}/{ANY_ID}", headers={}),
    Bad("PUT on the collection", 405, "method_not_allowed", method="PUT", body=VALID),
    Bad("DELETE a notification", 405, "method_not_allowed", method="DELETE", path=f"{COLLECTION}/{ANY_ID}", headers={}),
    Bad("unknown path", 404, "route_not_found", path="/v1/notification", body=VALID),
]  # fmt: skip


def _event(case: Bad) -> dict[str, Any]:
    event = http_api_event(case.method, case.path, body=case.body, headers=case.headers)
    if case.base64_body is not None:
        event["body"], event["isBase64Encoded"] = case.base64_body, True
    return event


@pytest.fixture
def publisher(moto_aws, monkeypatch: pytest.MonkeyPatch) -> MemoryPublisher:
    fake = MemoryPublisher()
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: fake)
    return fake


def test_the_table_is_broad():
    assert len(CASES) >= 20
    assert {c.status for c in CASES} >= {400, 404, 405, 413, 415, 422}
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_request_is_refused_with_its_code_and_publishes_nothing(case: Bad, publisher, moto_aws):
    # Given a malformed request
    event = _event(case)

    # When API Gateway hands it to the ingest function
    answer = http_result(ingest_handler.handler(event, LocalLambdaContext("ingest")))

    # Then it gets the documented status and machine-readable code, as JSON with a correlation id
    assert answer.status == case.status, answer.body
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == case.code
    assert error["message"]
    assert answer.headers["x-correlation-id"]
    if case.loc is not None:
        assert [tuple(d["loc"]) for d in error["details"]] == [case.loc], error["details"]
    if case.status == 405:
        assert answer.headers["allow"] in {"POST", "GET"}
    # And nothing was published, nor any idempotency record left behind
    assert publisher.records == []
    assert moto_aws.client("dynamodb").scan(TableName=IDEMPOTENCY_TABLE)["Items"] == []


def test_error_details_never_echo_the_personal_data_sent(publisher):
    # Given a request whose invalid fields are personal data
    body = body_with("customer.email", "ada.lovelace@", channels=["email"])

    # When it is refused
    answer = http_result(
        ingest_handler.handler(
            http_api_event("POST", "/v1/notifications", body=body, headers=JSON_HEADERS), LocalLambdaContext("ingest")
        )
    )

    # Then the error names the field but does not repeat its value
    assert answer.status == 422
    assert "ada.lovelace" not in answer.body.decode()
