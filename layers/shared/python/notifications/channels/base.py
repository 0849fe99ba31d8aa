"""The channel plugin protocol and its registry.

A channel module provides a recipient model (what an address looks like), rendering (templates per locale),
the provider call, and the classification of provider errors into ``TransientDeliveryError`` (retried) and
``PermanentDeliveryError`` (dead-lettered). It registers a factory with ``@register(Channel.X)``; the sender
function imports only the module of its own channel.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment

from notifications.models import Channel, ChannelMessage
from notifications.settings import SenderSettings

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True)
class Receipt:
    provider_message_id: str | None


class ChannelSender(Protocol):
    channel: Channel

    def send(self, message: ChannelMessage) -> Receipt:
        """Deliver one message; raise TransientDeliveryError or PermanentDeliveryError on failure."""
        ...


SenderFactory = Callable[[SenderSettings], ChannelSender]
REGISTRY: dict[Channel, SenderFactory] = {}


def register(channel: Channel) -> Callable[[SenderFactory], SenderFactory]:
    def decorate(factory: SenderFactory) -> SenderFactory:
        REGISTRY[channel] = factory
        return factory

    return decorate


def channel_sender(settings: SenderSettings) -> ChannelSender:
    """The sender of the configured channel; imports its module on demand."""
    importlib.import_module(f"notifications.channels.{settings.channel.value}")
    return REGISTRY[settings.channel](settings)


_ENV = ImmutableSandboxedEnvironment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def escape_mrkdwn(value: object) -> str:
    """Slack's escaping: only ``&``, ``<`` and ``>`` (so ``<!channel>`` in a name cannot mention anyone)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Slack mrkdwn templates (``*.mrkdwn``): every ``{{ value }}`` is escaped, the template's own markup is kept.
_MRKDWN_ENV = ImmutableSandboxedEnvironment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=False,
    finalize=escape_mrkdwn,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(channel: Channel, locale: str, name: str, message: ChannelMessage) -> str:
    """Render ``templates/<channel>/<locale>/<name>`` with the message.

    Values are escaped for the template's format: HTML for ``*.html``, Slack's for ``*.mrkdwn``, none for text.
    """
    env = _MRKDWN_ENV if name.endswith(".mrkdwn") else _ENV
    template = env.get_template(f"{channel.value}/{locale}/{name}")
    return template.render(purchase=message.purchase, customer=message.customer, message=message).strip()
