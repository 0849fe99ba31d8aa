"""Slack through an incoming webhook kept in Secrets Manager: each shop's (caller's) own channel, not the customer's."""

from __future__ import annotations

from notifications.channels.http import DeployEnvironment
from notifications.destinations import DestinationSettings
from notifications.registry import ChannelSpec


class SlackSettings(DestinationSettings):
    # Each caller's destination (notifications.destinations): the secret
    # ``<destination_secret_prefix>/slack/<caller id>``, ``{"url": "https://hooks.slack.com/..."}``.
    # Only dev may post to loopback or private addresses (template parameter Environment).
    environment: DeployEnvironment = "prod"


CHANNEL = ChannelSpec(settings=SlackSettings)
