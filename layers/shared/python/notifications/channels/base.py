"""What a channel's sender module builds on: the sender protocol, its receipt, the recipient, template rendering.

A sender module (``notifications.channels.<name>.sender``) provides the provider call and the classification of
provider errors into ``TransientDeliveryError`` (retried) and ``PermanentDeliveryError`` (dead-lettered), and a
``create(settings, channel_settings)`` factory. The sender function imports only the module of its own channel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol, runtime_checkable

from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import TypeAdapter, ValidationError

from notifications.contracts.envelopes import ChannelMessage
from notifications.errors import PermanentDeliveryError
from notifications.registry import Channel, spec


@dataclass(frozen=True)
class Receipt:
    provider_message_id: str | None


class ChannelSender(Protocol):
    channel: Channel

    def send(self, message: ChannelMessage) -> Receipt:
        """Deliver one message; raise TransientDeliveryError or PermanentDeliveryError on failure."""
        ...


@runtime_checkable
class PreparesBatches(Protocol):
    """A sender that reads what a whole batch needs at once (the email sender: the suppression list)."""

    def prepare(self, messages: Sequence[ChannelMessage]) -> None:
        """Called with the batch's messages before any of them is sent, and with ``()`` once the batch is done."""
        ...


@cache
def _address_type(channel: Channel) -> TypeAdapter[str]:
    address = spec(channel).address
    if address is None:
        raise TypeError(f"the {channel} channel delivers to operator configuration, not to a customer address")
    return TypeAdapter(address.annotation)


def recipient(
    channel: Channel,
    message: ChannelMessage,
    label: str,
    *,
    refusal: Callable[[str], str | None] | None = None,
    noun: str = "address",
) -> str:
    """The message's recipient as the channel's address type (its ``AddressKind``) reads it: canonical form.

    A permanent error ``invalid <label> recipient`` when it is no such address, and ``<label> recipient refused:
    <noun> <reason>`` when ``refusal`` gives a reason not to send to it (ingest checks it too; this catches a record
    queued before, or settings changed meanwhile)."""
    try:
        address = _address_type(channel).validate_python(message.recipient or "")
    except ValidationError as exc:
        raise PermanentDeliveryError(f"invalid {label} recipient") from exc
    reason = None if refusal is None else refusal(address)
    if reason is not None:
        raise PermanentDeliveryError(f"{label} recipient refused: {noun} {reason}", provider_code="refused")
    return address


# The channel packages: a template is ``<channel>/templates/<locale>/<name>`` below it.
CHANNELS_DIR = Path(__file__).resolve().parent

_ENV = ImmutableSandboxedEnvironment(
    loader=FileSystemLoader(CHANNELS_DIR),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


# Slack's control characters, escaped as Slack documents (https://api.slack.com/reference/surfaces/formatting#escaping),
# so ``<!channel>`` or ``<https://evil|bank>`` in a name cannot mention anyone or hide a link; then its formatting
# characters, for which mrkdwn has no escape, as look-alikes, so ``*``, ``_``, ``~`` and a backtick in a value cannot
# turn the message bold, italic, struck through or into code.
_MRKDWN = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"}
)


def escape_mrkdwn(value: object) -> str:
    """``value`` as literal text inside Slack mrkdwn (control characters escaped, formatting characters inert)."""
    return str(value).translate(_MRKDWN)


# Slack mrkdwn templates (``*.mrkdwn``): every ``{{ value }}`` is escaped, the template's own markup is kept.
_MRKDWN_ENV = ImmutableSandboxedEnvironment(
    loader=FileSystemLoader(CHANNELS_DIR),
    autoescape=False,
    finalize=escape_mrkdwn,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(channel: Channel, locale: str, name: str, message: ChannelMessage) -> str:
    """Render ``<channel>/templates/<locale>/<name>`` (in this package) with the message.

    Values are escaped for the template's format: HTML for ``*.html``, Slack's for ``*.mrkdwn``, none for text.
    """
    env = _MRKDWN_ENV if name.endswith(".mrkdwn") else _ENV
    template = env.get_template(f"{channel.value}/templates/{locale}/{name}")
    return template.render(purchase=message.purchase, customer=message.customer, message=message).strip()
