"""Pager: a page to the shop's on-call pager service, at the customer's pager id (the extension test's channel)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from notifications.channels.http import DeployEnvironment
from notifications.env import EnvModel
from notifications.registry import AddressKind, ChannelSpec

PagerId = Annotated[str, Field(strict=True, pattern=r"^P[0-9]{6}$")]


class PagerSettings(EnvModel):
    # Secrets Manager secret ``{"url": "https://...", "token": "..."}``.
    pager_secret_id: str
    # Only dev may post to loopback or private addresses.
    environment: DeployEnvironment = "prod"


PAGER_ID = AddressKind(field="pager_id", annotation=PagerId, per_hour=20, example="P123456")

CHANNEL = ChannelSpec(settings=PagerSettings, address=PAGER_ID)
