"""A JSON POST to the caller's own endpoint, signed per Standard Webhooks; URL and keys in Secrets Manager."""

from __future__ import annotations

from notifications.channels.http import HttpChannelSettings
from notifications.registry import ChannelSpec


class WebhookSettings(HttpChannelSettings):
    """Each caller's destination (notifications.destinations) is the secret
    ``<destination_secret_prefix>/webhook/<caller id>``, ``{"url": "https://...", "signing_keys": ["whsec_...", ...]}``.
    """


CHANNEL = ChannelSpec(settings=WebhookSettings)
