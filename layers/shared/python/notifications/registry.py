"""The channel registry: which channels exist, and what each one declares about itself.

``Channel`` lists the channels; each member is a package ``notifications.channels.<value>`` whose ``__init__.py``
declares ``CHANNEL = ChannelSpec(...)`` (a contract test keeps the two equal). Everything else derives the channel
list from here: the request and envelope models, fanout, the quotas, the OpenAPI document, the local stack and the
tests; template.yaml's channel mapping provisions one sender per member.

A channel that delivers to the customer owns that address: its ``AddressKind`` names the ``customer`` field, its
type (validation, the canonical form that is published and sent, the JSON Schema), the key its recipient quota
counts by, and that quota's default. The request's ``customer`` model is built from the address kinds.

This module is at the bottom of the package: it imports nothing of the package at import time, and reads a
channel's package only when asked for its spec (a package imports this module, ``env`` and its own modules).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notifications.env import EnvModel


class Channel(StrEnum):
    """A delivery channel."""

    # Each value is a package under ``notifications.channels``.
    EMAIL = "email"
    PUSH = "push"
    SLACK = "slack"
    SMS = "sms"
    WEBHOOK = "webhook"


@dataclass(frozen=True)
class AddressKind:
    """A kind of customer address a channel delivers to (an email address, a phone number, ...)."""

    # The ``customer`` field that holds it (also the environment variable of its quota: QUOTA_<FIELD>_PER_HOUR).
    field: str
    # Its pydantic type: validates the request's value and returns the canonical form, which is what is published
    # to Kafka and sent to the provider; its JSON Schema is the API document's.
    annotation: Any
    # Messages per hour to one address, whoever the caller, unless QUOTA_<FIELD>_PER_HOUR says otherwise.
    per_hour: int
    # A valid address in canonical form: the API document's example and the sample events' (``events/``).
    example: str
    # The recipient as its quota counts it: spellings the provider delivers to the same inbox count as one.
    quota_key: Callable[[str], str] = str.casefold


@dataclass(frozen=True)
class ChannelSpec:
    """What the rest of the system needs to know about a channel, without importing its provider adapter."""

    # The settings model the channel's sender reads from its environment (validated once per environment).
    settings: type[EnvModel]
    # The customer address it delivers to, or None when the target is operator configuration.
    address: AddressKind | None = None
    # Ingest's check of that address beyond its format: raises ``AddressRefusedError`` (a 422 on that field).
    check_address: Callable[[str], None] | None = None


class AddressRefusedError(ValueError):
    """The customer's address is well-formed but this channel does not send to it (the message says why)."""


@cache
def spec(channel: Channel) -> ChannelSpec:
    """The spec its package declares (imported on first use)."""
    declared = importlib.import_module(f"notifications.channels.{Channel(channel).value}").CHANNEL
    if not isinstance(declared, ChannelSpec):
        raise TypeError(f"notifications.channels.{channel}.CHANNEL must be a ChannelSpec")
    return declared


def address_of(channel: Channel) -> AddressKind | None:
    """The customer address ``channel`` delivers to, or None when its target is operator configuration."""
    return spec(channel).address


@cache
def address_kinds() -> dict[str, AddressKind]:
    """Every customer address some channel delivers to, by field, in channel order."""
    kinds: dict[str, AddressKind] = {}
    for channel in Channel:
        kind = address_of(channel)
        if kind is not None and kinds.setdefault(kind.field, kind) is not kind:
            raise TypeError(f"two address kinds claim customer.{kind.field}: declare one and share it")
    return kinds


def customer_addressed() -> dict[Channel, str]:
    """The channels whose recipient is the customer, with the ``customer`` field that holds the address."""
    return {channel: kind.field for channel in Channel if (kind := address_of(channel)) is not None}
