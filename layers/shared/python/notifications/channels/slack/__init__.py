"""Slack through an incoming webhook kept in Secrets Manager: the shop's own channel, not the customer's."""

from __future__ import annotations

from notifications.channels.http import DeployEnvironment
from notifications.env import EnvModel
from notifications.registry import ChannelSpec


class SlackSettings(EnvModel):
    # Secrets Manager secret ``{"url": "https://hooks.slack.com/..."}``.
    slack_webhook_secret_id: str
    # Only dev may post to loopback or private addresses (template parameter Environment).
    environment: DeployEnvironment = "prod"


CHANNEL = ChannelSpec(settings=SlackSettings)
