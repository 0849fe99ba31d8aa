"""Slack through an incoming webhook: a Block Kit message posted to the URL kept in Secrets Manager.

The target is operator configuration (``ChannelMessage.recipient`` is None), one per caller: the message's caller's
secret ``<prefix>/slack/<caller id>`` ``{"url": "https://hooks..."}`` (``notifications.destinations``).
Texts come from ``templates/<locale>/``: ``header.txt`` (plain text), ``body.mrkdwn`` and ``context.mrkdwn``
(values escaped the Slack way, so a customer name cannot mention ``@channel`` or inject links).
"""

from __future__ import annotations

import json
from typing import Any

from notifications.channels.base import Receipt, escape_mrkdwn, render
from notifications.channels.destination_sender import Destination, DestinationSender
from notifications.channels.http import HttpAnswer
from notifications.channels.slack import SlackSettings
from notifications.contracts.envelopes import ChannelMessage
from notifications.registry import Channel
from notifications.settings import SenderSettings

# Block Kit limits: https://docs.slack.dev/reference/block-kit/blocks
_HEADER_MAX = 150
_TEXT_MAX = 3000


class SlackTarget(Destination):
    """The secret's content: the incoming webhook's URL."""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def slack_message(message: ChannelMessage) -> dict[str, Any]:
    """The Block Kit payload: header, body section, context line, and ``text`` as the notification fallback."""
    channel, locale = SlackSender.channel, message.locale
    header = _cut(render(channel, locale, "header.txt", message), _HEADER_MAX)
    return {
        "text": escape_mrkdwn(header),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _cut(render(channel, locale, "body.mrkdwn", message), _TEXT_MAX)},
            },
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": _cut(render(channel, locale, "context.mrkdwn", message), _TEXT_MAX)}
                ],
            },
        ],
    }


class SlackSender(DestinationSender[SlackTarget]):
    channel = Channel("slack")
    destination = SlackTarget

    def body(self, message: ChannelMessage) -> bytes:
        return json.dumps(slack_message(message), ensure_ascii=False).encode()

    def receipt(self, answer: HttpAnswer) -> Receipt:
        # Incoming webhooks answer "ok" and no message id; Slack's request id is what support can trace.
        return Receipt(provider_message_id=answer.headers.get("x-slack-req-id"))


def create(settings: SenderSettings, config: SlackSettings) -> SlackSender:
    return SlackSender.create(settings, config)
