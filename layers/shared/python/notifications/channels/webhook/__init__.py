"""A JSON POST to the shop's own endpoint, signed per Standard Webhooks; URL and signing keys in Secrets Manager."""

from __future__ import annotations

from notifications.channels.http import DeployEnvironment
from notifications.env import EnvModel
from notifications.registry import ChannelSpec


class WebhookSettings(EnvModel):
    # Secrets Manager secret ``{"url": "https://...", "signing_keys": ["whsec_...", ...]}``.
    webhook_secret_id: str
    # Only dev may post to loopback or private addresses (template parameter Environment).
    environment: DeployEnvironment = "prod"


CHANNEL = ChannelSpec(settings=WebhookSettings)
