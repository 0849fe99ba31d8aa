"""The channel registry: every subpackage of this package is one delivery channel, named after its folder.

A channel package holds everything the channel is:

- ``__init__.py`` declares ``CHANNEL = ChannelSpec(...)``: the customer field it delivers to (``None`` when the
  target is operator configuration), its settings model and, optionally, a check of the customer's address that
  ingest runs on every request asking for the channel. It stays cheap to import: ingest reads it to validate
  requests (a check imports anything heavy on its first call).
- ``sender.py`` holds the provider adapter and ``create(settings, channel_settings) -> ChannelSender``; only the
  sender function of that channel imports it.
- ``templates/<locale>/`` holds its texts.

Nothing else lists the channels: the ``Channel`` enum, fanout, the OpenAPI enum, the local stack and the tests
all derive them from ``names()``, and template.yaml's channel mapping provisions one sender per entry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from notifications.channels.base import ChannelSender
    from notifications.settings import EnvModel, SenderSettings

CHANNELS_DIR = Path(__file__).resolve().parent

CustomerAddress = Literal["email", "phone"]


@dataclass(frozen=True)
class ChannelSpec:
    """What the rest of the system needs to know about a channel, without importing its provider adapter."""

    # The settings model the channel's sender reads from its environment (validated once per environment).
    settings: type[EnvModel]
    # The ``customer`` field holding the recipient, or None when the target is operator configuration.
    address: CustomerAddress | None = None
    # Ingest's check of that address beyond its format: raises ``AddressRefusedError`` (a 422 on that field).
    check_address: Callable[[str], None] | None = None


class AddressRefusedError(ValueError):
    """The customer's address is well-formed but this channel does not send to it (the message says why)."""


@cache
def names() -> tuple[str, ...]:
    """Every channel, in name order: the subpackages of this package."""
    return tuple(sorted(path.parent.name for path in CHANNELS_DIR.glob("*/__init__.py")))


@cache
def spec(name: str) -> ChannelSpec:
    if name not in names():
        raise KeyError(f"unknown channel {name!r}")
    declared = importlib.import_module(f"{__name__}.{name}").CHANNEL
    if not isinstance(declared, ChannelSpec):
        raise TypeError(f"{__name__}.{name}.CHANNEL must be a ChannelSpec")
    return declared


def create_sender(settings: SenderSettings, env: Mapping[str, str] | None = None) -> ChannelSender:
    """The sender of ``settings.channel``, its own settings read from ``env`` (default: the process environment)."""
    declared = spec(settings.channel)
    module = importlib.import_module(f"{__name__}.{settings.channel}.sender")
    sender: ChannelSender = module.create(settings, declared.settings.from_env(env))
    return sender
