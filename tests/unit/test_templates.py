"""Every template of every channel renders the sample purchase in both locales, and values are escaped right."""

from __future__ import annotations

from typing import get_args

import pytest

from notifications.channels.base import CHANNELS_DIR, render
from notifications.contracts.fields import Locale
from notifications.registry import Channel
from tests.channel_support import channel_message

LOCALES = get_args(Locale)


def templates(channel: Channel, locale: str) -> set[str]:
    return {p.name for p in (CHANNELS_DIR / channel.value / "templates" / locale).glob("*") if p.is_file()}


CASES = [
    (channel, locale, name) for channel in Channel for locale in LOCALES for name in sorted(templates(channel, "en"))
]


def test_every_channel_has_the_same_templates_in_every_locale():
    # Given each channel package's template folder
    # When it is listed per locale
    found = {(channel, locale): templates(channel, locale) for channel in Channel for locale in LOCALES}

    # Then every channel has templates, the same set in every locale, and no locale folder is unknown
    assert all(templates(channel, "en") for channel in Channel)
    assert found == {(channel, locale): templates(channel, "en") for channel in Channel for locale in LOCALES}
    for channel in Channel:
        assert {p.name for p in (CHANNELS_DIR / channel.value / "templates").iterdir()} == set(LOCALES)


@pytest.mark.parametrize(("channel", "locale", "name"), CASES, ids=str)
def test_template_renders_the_sample_purchase(channel, locale, name):
    # Given the sample purchase in this locale
    message = channel_message(channel, locale=locale)

    # When the template is rendered
    text = render(channel, locale, name, message)

    # Then it shows the purchase (order id, total or notification id) and leaves no template syntax behind
    shown = (message.purchase.order_id, f"{message.purchase.total} EUR", str(message.notification_id))
    assert any(value in text for value in shown)
    assert "{{" not in text and "{%" not in text and text.strip() == text and text


@pytest.mark.parametrize(("channel", "name"), sorted({(c, n) for c, _, n in CASES}), ids=str)
def test_locales_are_translated(channel, name):
    # Given the same purchase in English and German
    english = render(channel, "en", name, channel_message(channel, locale="en"))
    german = render(channel, "de", name, channel_message(channel, locale="de"))

    # Then the texts differ beyond the ids
    def strip_ids(text: str) -> str:
        return "".join(ch for ch in text if not ch.isalnum() or ch.isalpha())

    assert english != german or strip_ids(english) != strip_ids(german)


@pytest.mark.parametrize("locale", LOCALES)
def test_html_templates_escape_a_malicious_name(locale):
    # Given a customer whose name is a script tag
    message = channel_message(
        Channel.EMAIL,
        locale=locale,
        customer={"id": "c-1", "name": "<script>alert(1)</script>", "email": "a@b.example"},
    )

    # When the HTML body is rendered
    html = render(Channel.EMAIL, locale, "body.html", message)

    # Then the name is shown as text, never as markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html


@pytest.mark.parametrize("locale", LOCALES)
def test_slack_templates_escape_mentions_and_markup_in_values(locale):
    # Given a customer name that would mention the whole channel and inject a tag
    name = "<!channel> & <script>"
    message = channel_message(Channel.SLACK, locale=locale, customer={"id": "c-1", "name": name})

    # When the mrkdwn body is rendered
    body = render(Channel.SLACK, locale, "body.mrkdwn", message)

    # Then only &, < and > are escaped (Slack's rule), and the template's own markup (*bold*) is kept
    assert "&lt;!channel&gt; &amp; &lt;script&gt;" in body
    assert "<!channel>" not in body and "<script>" not in body
    assert body.startswith("*&lt;!channel&gt;")


def test_plain_text_templates_are_not_escaped():
    # Given a name with characters HTML would escape
    message = channel_message(
        Channel.SMS, customer={"id": "c-1", "name": "Tom & Jerry's <Shop>", "phone": "+4915112345678"}
    )

    # When the SMS text is rendered
    text = render(Channel.SMS, "en", "message.txt", message)

    # Then the customer reads the name as written, not as entities
    assert "Tom & Jerry's <Shop>" in text
