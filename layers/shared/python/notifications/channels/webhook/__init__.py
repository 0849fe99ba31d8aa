"""A signed JSON POST to the shop's own endpoint, kept in Secrets Manager with its signing key."""

from __future__ import annotations

from notifications.channels import ChannelSpec
from notifications.settings import EnvModel


class WebhookSettings(EnvModel):
    # Secrets Manager secret ``{"url": "https://...", "signing_key": "..."}``.
    webhook_secret_id: str


CHANNEL = ChannelSpec(settings=WebhookSettings)
