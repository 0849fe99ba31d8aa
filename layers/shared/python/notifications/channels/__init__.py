"""The channel packages: one subpackage per member of ``notifications.registry.Channel``, named after it.

A channel package holds everything the channel is:

- ``__init__.py`` declares ``CHANNEL = ChannelSpec(...)`` (``notifications.registry``): its settings model, the
  customer address it delivers to (an ``AddressKind``: field, type and canonical form, recipient-quota key and
  default; ``None`` when the target is operator configuration) and, optionally, a check of that address that ingest
  runs on every request asking for the channel. It stays cheap to import: ingest reads it to validate requests (a
  check imports anything heavy on its first call).
- ``sender.py`` holds the provider adapter and ``create(settings, channel_settings) -> ChannelSender``; only the
  sender function of that channel imports it.
- ``templates/<locale>/`` holds its texts.

Beside them, what several channels share: ``base`` (the sender protocol, the recipient, rendering), ``sns`` (SNS
``Publish`` and its errors), ``http`` (an HTTPS POST and its answer), ``destination_sender`` (a POST to each caller's
own destination) and ``secret`` (a secret read through Powertools and cached).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from notifications.registry import spec

if TYPE_CHECKING:
    from notifications.channels.base import ChannelSender
    from notifications.settings import SenderSettings


def create_sender(settings: SenderSettings, env: Mapping[str, str] | None = None) -> ChannelSender:
    """The sender of ``settings.channel``, its own settings read from ``env`` (default: the process environment)."""
    module = importlib.import_module(f"{__name__}.{settings.channel.value}.sender")
    sender: ChannelSender = module.create(settings, spec(settings.channel).settings.from_env(env))
    return sender
