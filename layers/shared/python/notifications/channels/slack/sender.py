"""Slack through an incoming webhook: a Block Kit message posted to the URL kept in Secrets Manager.

The target is operator configuration (``ChannelMessage.recipient`` is None), one per caller: the message's caller's
secret ``<prefix>/slack/<caller id>`` ``{"url": "https://hooks..."}`` (``notifications.destinations``).
Texts come from ``templates/<locale>/``: ``header.txt`` (plain text), ``body.mrkdwn`` and ``context.mrkdwn``
(values escaped the Slack way, so a customer name cannot mention ``@channel`` or inject links).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from notifications.channels import http
from notifications.channels.base import Receipt, escape_mrkdwn, render
from notifications.channels.slack import SlackSettings
from notifications.contracts.envelopes import ChannelMessage
from notifications.destinations import CallerDestinations, caller_destinations
from notifications.registry import Channel
from notifications.settings import SenderSettings

# Block Kit limits: https://docs.slack.dev/reference/block-kit/blocks
_HEADER_MAX = 150
_TEXT_MAX = 3000


class SlackTarget(BaseModel):
    """The secret's content."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    url: Annotated[str, AfterValidator(http.check_url_form)]


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


class SlackSender:
    channel = Channel("slack")

    def __init__(
        self,
        settings: SenderSettings,
        targets: CallerDestinations[SlackTarget],
        post: http.Post = http.post,
        *,
        allow_private: bool = False,
    ) -> None:
        self._timeout = settings.provider_timeout_seconds
        self._targets = targets
        self._post = post
        self._allow_private = allow_private

    def send(self, message: ChannelMessage) -> Receipt:
        target = self._targets.of(message.caller)  # the caller's own channel, never another's
        body = json.dumps(slack_message(message), ensure_ascii=False).encode()

        def deliver(destination: SlackTarget) -> Receipt:
            answer = self._post(
                destination.url, body, {}, timeout=self._timeout, provider="slack", allow_private=self._allow_private
            )
            # Incoming webhooks answer "ok" and no message id; Slack's request id is what support can trace.
            return Receipt(provider_message_id=answer.headers.get("x-slack-req-id"))

        return target.call(deliver)


def create(settings: SenderSettings, config: SlackSettings) -> SlackSender:
    targets = caller_destinations(config, SlackSender.channel.value, SlackTarget)
    return SlackSender(settings, targets, allow_private=http.allows_private_targets(config.environment))
