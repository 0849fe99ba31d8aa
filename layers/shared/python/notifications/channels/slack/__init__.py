"""Slack through an incoming webhook kept in Secrets Manager: each shop's (caller's) own channel, not the customer's."""

from __future__ import annotations

from notifications.channels.http import HttpChannelSettings
from notifications.registry import ChannelSpec


class SlackSettings(HttpChannelSettings):
    """Each caller's destination (notifications.destinations) is the secret
    ``<destination_secret_prefix>/slack/<caller id>``, ``{"url": "https://hooks.slack.com/..."}``."""


CHANNEL = ChannelSpec(settings=SlackSettings)
