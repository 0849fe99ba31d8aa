"""The Kafka envelopes: ``notification.requested`` on the requested topic, ``notification.channel`` on each channel's
topic, and the fan-out mapping from one to the other.

Schema names are part of the wire format: a consumer rejects a record whose ``schema`` it does not know instead of
guessing. Envelopes v2 add ``caller``, the stable, non-personal id of who asked (``notifications.callers``); the
notification belongs to it. v1 is the same envelope without a caller: records written before callers existed, still
read.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from notifications.contracts.api import Customer, Purchase
from notifications.contracts.fields import CallerId, Contract, Locale
from notifications.contracts.keys import NotificationKey, NotificationRef
from notifications.registry import Channel, address_of

REQUESTED_SCHEMA = "notification.requested/v1"
REQUESTED_SCHEMA_V2 = "notification.requested/v2"
CHANNEL_SCHEMA = "notification.channel/v1"
CHANNEL_SCHEMA_V2 = "notification.channel/v2"
REQUESTED_SCHEMAS = (REQUESTED_SCHEMA, REQUESTED_SCHEMA_V2)
CHANNEL_SCHEMAS = (CHANNEL_SCHEMA, CHANNEL_SCHEMA_V2)


class _Versioned(Contract):
    """What both envelopes share: the schema, v2 with the caller, v1 without (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    _V1: ClassVar[str]
    _V2: ClassVar[str]

    # Without a schema (built by code, never from Kafka, where it is required) the version follows the caller.
    schema_: str = Field(alias="schema")
    caller: CallerId | None = None
    notification_id: UUID

    @model_validator(mode="before")
    @classmethod
    def _version_from_caller(cls, data: Any) -> Any:
        """Built without a schema: v2 with a caller, else v1."""
        if isinstance(data, dict) and "schema" not in data and "schema_" not in data:
            return {**data, "schema": cls._V2 if data.get("caller") is not None else cls._V1}
        return data

    @model_validator(mode="after")
    def _caller_by_version(self) -> Self:
        if (self.caller is None) != (self.schema_ == self._V1):
            raise ValueError(f"{self._V2} carries a caller and {self._V1} none")
        return self

    def to_json(self) -> bytes:
        """The wire form. A v1 envelope has no ``caller`` field at all: v1 readers forbid unknown fields."""
        return self.model_dump_json(by_alias=True, exclude={"caller"} if self.caller is None else None).encode()

    @property
    def key(self) -> NotificationRef:
        """The notification's key in its caller's namespace (its bare id for a v1 envelope)."""
        return NotificationKey(self.caller, self.notification_id) if self.caller else self.notification_id


class NotificationRequested(_Versioned):
    """Kafka envelope ``notification.requested/v2`` (or v1) on the requested topic (key: notification id)."""

    _V1, _V2 = REQUESTED_SCHEMAS
    schema_: Literal["notification.requested/v1", "notification.requested/v2"] = Field(
        "notification.requested/v1", alias="schema"
    )
    correlation_id: str
    accepted_at: AwareDatetime
    channels: list[Channel]
    locale: Locale
    purchase: Purchase
    customer: Customer


class ChannelMessage(_Versioned):
    """Kafka message ``notification.channel/v2`` (or v1): one per notification and channel on
    ``notifications.<channel>``."""

    _V1, _V2 = CHANNEL_SCHEMAS
    schema_: Literal["notification.channel/v1", "notification.channel/v2"] = Field(
        "notification.channel/v1", alias="schema"
    )
    correlation_id: str
    channel: Channel
    # The customer's address for customer-addressed channels; None where the target is operator configuration.
    recipient: str | None
    locale: Locale
    purchase: Purchase
    customer: Customer

    @property
    def delivery_key(self) -> str:
        """What makes a send unique: caller, notification, channel and recipient (v1: no caller)."""
        caller = f"{self.caller}:" if self.caller else ""
        return f"{caller}{self.notification_id}:{self.channel}:{self.recipient or '-'}"


def channel_messages(envelope: NotificationRequested) -> list[ChannelMessage]:
    """The fan-out mapping: one channel message per requested channel, of the envelope's version."""
    return [
        ChannelMessage(
            caller=envelope.caller,
            notification_id=envelope.notification_id,
            correlation_id=envelope.correlation_id,
            channel=channel,
            recipient=getattr(envelope.customer, kind.field) if (kind := address_of(channel)) else None,
            locale=envelope.locale,
            purchase=envelope.purchase,
            customer=envelope.customer,
        )
        for channel in envelope.channels
    ]
