"""What a caller's text can do downstream: nothing. Slack mrkdwn values cannot mention, link or format; the
correlation id is a plain token or replaced; the log scrubber masks phone numbers however they are written.

Slack's escaping rule: https://api.slack.com/reference/surfaces/formatting#escaping (mrkdwn has no escape for
``*``, ``_``, ``~`` and the backtick, hence look-alikes).
"""

from __future__ import annotations

import json

import pytest

from notifications.channels.base import escape_mrkdwn, render
from notifications.channels.slack.sender import slack_message
from notifications.observability import (
    CORRELATION_HEADER,
    correlation_id_from_headers,
    scrub,
    usable_correlation_id,
)
from notifications.registry import Channel
from tests.channel_support import channel_message


def test_mrkdwn_values_cannot_mention_link_or_format():
    # Given a customer and an item whose names carry Slack control and formatting characters
    name = "*Eve* _the_ ~boss~ `rm` <!channel> <https://evil.example|bank> &"
    message = channel_message(
        Channel.SLACK,
        customer={"id": "c-1", "name": name},
        purchase={
            "order_id": "A-1",
            "purchased_at": "2026-11-21T10:00:00Z",
            "currency": "EUR",
            "total": "1.00",
            "items": [{"sku": "S_1", "name": "*free*", "quantity": 1, "unit_price": "1.00"}],
        },
    )

    # When the Slack message is built
    payload = json.dumps(slack_message(message), ensure_ascii=False)
    body = render(Channel.SLACK, "en", "body.mrkdwn", message)

    # Then no value opens a mention, a link or any formatting
    for raw in ("<!channel>", "<https://", "*Eve*", "_the_", "~boss~", "`rm`", "*free*"):
        assert raw not in payload
    assert "&lt;!channel&gt;" in body and "&amp;" in body
    # And the template's own markup is kept: the name is still set in bold by the template
    assert body.startswith("*\u2217Eve\u2217 \u02cdthe\u02cd \u223cboss\u223c \u02cbrm\u02cb &lt;!channel&gt;")


@pytest.mark.parametrize(
    ("value", "escaped"),
    [("a&b", "a&amp;b"), ("<@U123>", "&lt;@U123&gt;"), ("*b*", "\u2217b\u2217"), ("plain", "plain")],
)
def test_escape_mrkdwn(value, escaped):
    assert escape_mrkdwn(value) == escaped


@pytest.mark.parametrize(
    "given",
    ["corr-1", "8f58c11d-ebc2-4ca7-a934-226e2bb6192c", "trace:abc.def_1", "A" * 128],
)
def test_a_plain_token_correlation_id_is_kept(given):
    assert usable_correlation_id(given) == given
    assert correlation_id_from_headers(((CORRELATION_HEADER, given.encode()),)) == given


@pytest.mark.parametrize(
    "given",
    [
        "",
        "a b",
        "line\r\nInjected: 1",
        "<script>",
        '"},{"x":"',
        "ada@example.com",
        "+4915112345678",
        "-leading-dash",
        "A" * 129,
        "caf\u00e9",
        "\u202eevil",
    ],
)
def test_any_other_correlation_id_is_replaced(given):
    # Given a correlation id that is not a plain token (spaces, CR/LF, markup, JSON, personal data, too long, non-ASCII)
    chosen = usable_correlation_id(given)

    # Then a new id is used instead, and a Kafka header carrying it is ignored
    assert chosen != given and usable_correlation_id(chosen) == chosen
    assert correlation_id_from_headers(((CORRELATION_HEADER, given.encode()),)) is None


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("to +4915112345678 now", "to +***78 now"),
        ("to +49 151 12345678", "to +***78"),
        ("to +49-151-1234-5678", "to +***78"),
        ("to +49 (0)151 1234 5678", "to +***78"),
        ("to 0049 151 12345678", "to +***78"),
        ("to 0151 12345678", "to ***78"),
        ("to 0151/12345678", "to ***78"),
        ("to (030) 1234567", "to ***67"),
        ("to 06.12.34.56.78", "to ***78"),
        ("to +1 (415) 555-0123", "to +***23"),
        ("to (415) 555-0123", "to ***23"),
        ("to 415-555-0123", "to ***23"),
        ("to 415.555.0123", "to ***23"),
        ('{"phone":"+44 7911 123456"}', '{"phone":"+***56"}'),
        ("mail ada.lovelace@example.com", "mail a***@***"),
    ],
)
def test_the_scrubber_masks_phone_numbers_in_every_common_format(line, masked):
    assert scrub(line) == masked


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("mail {ada}@example.com", "mail {***@***"),
        ("mail ada@example.c0m", "mail a***@***"),
        ('{"to":"o\'brien+shop@mail-1.example.co.uk"}', '{"to":"o***@***"}'),
        ("mail ada!lovelace#1@example.com now", "mail a***@*** now"),
    ],
)
def test_the_scrubber_masks_email_addresses_with_unusual_local_parts_or_top_level_domains(line, masked):
    # A token shaped like an address is hidden even when its local part uses characters RFC 5322 allows (braces,
    # "!", "#", "'") or its top-level domain holds a digit (mistyped, or not a real domain: still personal data)
    assert scrub(line) == masked


@pytest.mark.parametrize(
    "line",
    [
        "2026-11-21T10:00:00Z",
        "2026-11-21 10:00:00,123+0000",
        "id 8f58c11d-ebc2-4ca7-a934-226e2bb6192c",
        "id 01234567-89ab-cdef-0123-456789abcdef",
        "offset 1234567 epoch 1790000000",
        "trace 1-5759e988-bd862e3fe1be46a994272793",
        "order A-10012345 total 49.90",
        "took 0.000123456 s",
        "version 3.11.4 ip 192.168.100.200",
        "installed boto3@1.35.0 and urllib3@2.2.3",
        "a decorator @tracer.capture_method at line 12",
    ],
)
def test_the_scrubber_leaves_timestamps_ids_and_counts_alone(line):
    assert scrub(line) == line
