"""A JSON POST to the caller's own endpoint, signed per Standard Webhooks; URL and keys in Secrets Manager."""

from __future__ import annotations

from notifications.channels.http import DeployEnvironment
from notifications.destinations import DestinationSettings
from notifications.registry import ChannelSpec


class WebhookSettings(DestinationSettings):
    # Each caller's destination (notifications.destinations): the secret
    # ``<destination_secret_prefix>/webhook/<caller id>``,
    # ``{"url": "https://...", "signing_keys": ["whsec_...", ...]}``.
    # Only dev may post to loopback or private addresses (template parameter Environment).
    environment: DeployEnvironment = "prod"


CHANNEL = ChannelSpec(settings=WebhookSettings)
