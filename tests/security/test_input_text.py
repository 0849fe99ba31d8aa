"""Free text in the request contract: control, format and line-break characters are refused on the field they are
in (422, nothing published); what is accepted is NFC-normalised. Unicode categories:
https://www.unicode.org/reports/tr44/#General_Category_Values
"""

from __future__ import annotations

import json
from typing import Any

import ingest_handler
import pytest

from devstack.apigw import http_api_event, http_result
from devstack.lambda_context import LocalLambdaContext
from notifications.contracts.envelopes import NotificationRequested
from notifications.runtime import ingest
from tests.support import MemoryPublisher, sample_request

TEXT_FIELDS = [
    ("purchase", "order_id"),
    ("purchase", "items", 0, "sku"),
    ("purchase", "items", 0, "name"),
    ("customer", "id"),
    ("customer", "name"),
]
NAME_FIELDS = [("purchase", "items", 0, "name"), ("customer", "name")]
REFUSED = {
    "CR LF": "Ada\r\nBcc: eve@example.com",
    "LF": "Ada\nLovelace",
    "trailing LF": "Ada\n",
    "NUL": "Ada\x00",
    "right-to-left override U+202E": "\u202eecivni.exe",
    "line separator U+2028": "Ada\u2028Lovelace",
    "zero-width space U+200B": "A\u200bda",
    "byte order mark": "\ufeffAda",
    "tab": "Ada\tLovelace",
    "DEL": "Ada\x7f",
    "C1 control U+0085": "Ada\x85",
}


@pytest.fixture
def publisher(moto_aws, monkeypatch: pytest.MonkeyPatch) -> MemoryPublisher:
    fake = MemoryPublisher()
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: fake)
    return fake


def with_value(location: tuple[Any, ...], value: str) -> dict[str, Any]:
    body = sample_request()
    node: Any = body
    for part in location[:-1]:
        node = node[part]
    node[location[-1]] = value
    return body


def post(body: dict[str, Any]):
    event = http_api_event(
        "POST", "/v1/notifications", body=json.dumps(body), headers={"content-type": "application/json"}
    )
    return http_result(ingest_handler.handler(event, LocalLambdaContext("ingest")))


@pytest.mark.parametrize("location", TEXT_FIELDS, ids=lambda loc: ".".join(map(str, loc)))
@pytest.mark.parametrize("value", REFUSED.values(), ids=list(REFUSED))
def test_control_format_and_line_break_characters_are_refused_on_their_field(publisher, location, value):
    # Given a valid request with one text field carrying a refused character
    body = with_value(location, value)

    # When it is posted
    answer = post(body)

    # Then it is a 422 naming exactly that field, without echoing the value, and nothing was published
    assert answer.status == 422, answer.body
    [detail] = answer.json()["error"]["details"]
    assert tuple(detail["loc"]) == location
    assert "control, format or line-break" in detail["msg"]
    assert value not in answer.body.decode()
    assert publisher.records == []


def test_text_is_nfc_normalised_before_it_is_published(publisher):
    # Given a name written with a combining accent (NFD: "e" + U+0301) and an order id in compatibility-free NFD
    body = with_value(("customer", "name"), "Zoe\u0301")
    body["purchase"]["order_id"] = "A-Cafe\u0301"

    # When it is accepted
    assert post(body).status == 202

    # Then Kafka carries the composed forms (U+00E9)
    [record] = publisher.records
    envelope = NotificationRequested.model_validate_json(record.value)
    assert envelope.customer.name == "Zo\u00e9"
    assert envelope.purchase.order_id == "A-Caf\u00e9"


@pytest.mark.parametrize("location", NAME_FIELDS, ids=lambda loc: ".".join(map(str, loc)))
def test_names_may_hold_zero_width_joiners_other_text_may_not(publisher, location):
    # Given a Persian name with a zero-width non-joiner and an emoji sequence with zero-width joiners
    for name in (
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        "Family \U0001f468\u200d\U0001f469\u200d\U0001f467",
    ):
        # When it is posted as a name, then it is accepted
        assert post(with_value(location, name)).status == 202
    # But an id with a joiner is refused
    answer = post(with_value(("customer", "id"), "c-\u200d42"))
    assert answer.status == 422
    assert [tuple(d["loc"]) for d in answer.json()["error"]["details"]] == [("customer", "id")]


INVISIBLE = {
    "hangul filler U+3164": "\u3164",
    "halfwidth hangul filler U+FFA0": "\uffa0",
    "hangul choseong and jungseong fillers": "\u115f\u1160",
    "braille pattern blank U+2800": "\u2800\u2800",
    "combining grapheme joiner U+034F": "\u034f",
    "variation selector U+FE0F": "\ufe0f",
    "zero-width joiner": "\u200d",
    "fillers between ideographic spaces": "\u3000\u3164\u3000",
    "filler and no-break space": "\u3164\u00a0\u3164",
}


@pytest.mark.parametrize("location", TEXT_FIELDS, ids=lambda loc: ".".join(map(str, loc)))
@pytest.mark.parametrize("value", INVISIBLE.values(), ids=list(INVISIBLE))
def test_text_made_only_of_invisible_filler_or_blank_characters_is_refused_on_its_field(publisher, location, value):
    # Given a valid request whose text field holds nothing visible (it would look empty on every screen)
    body = with_value(location, value)

    # When it is posted
    answer = post(body)

    # Then it is a 422 naming that field, and nothing was published
    assert answer.status == 422, answer.body
    [detail] = answer.json()["error"]["details"]
    assert tuple(detail["loc"]) == location
    assert publisher.records == []


def test_a_name_may_hold_fillers_beside_visible_characters(publisher):
    # Given a name with a visible character next to a filler or a variation selector (an emoji's presentation)
    for name in ("Ada\u3164", "\u2764\ufe0f Ada"):
        # Then it is accepted
        assert post(with_value(("customer", "name"), name)).status == 202
