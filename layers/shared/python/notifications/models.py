"""Versioned contracts shared by every function: the HTTP request, the Kafka envelopes and the status view.

Money is a decimal string, never a float. Schema names are part of the wire format: a consumer rejects a record
whose ``schema`` it does not know instead of guessing.

Envelopes v2 add ``caller``, the stable, non-personal id of who asked (``notifications.callers``); the notification
belongs to it. v1 is the same envelope without a caller: records written before callers existed, still read.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from notifications.registry import AddressRefusedError, Channel, address_kinds, address_of, spec

REQUESTED_SCHEMA = "notification.requested/v1"
REQUESTED_SCHEMA_V2 = "notification.requested/v2"
CHANNEL_SCHEMA = "notification.channel/v1"
CHANNEL_SCHEMA_V2 = "notification.channel/v2"
REQUESTED_SCHEMAS = (REQUESTED_SCHEMA, REQUESTED_SCHEMA_V2)
CHANNEL_SCHEMAS = (CHANNEL_SCHEMA, CHANNEL_SCHEMA_V2)
# A caller id: "c-" and 26 base32 letters of a digest of the principal (``notifications.callers.caller_id``).
CALLER_ID_PATTERN = r"^c-[a-z2-7]{26}$"


# ISO 4217 active codes (https://www.iso.org/iso-4217-currency-codes.html).
ISO_4217 = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    ]
)

# Patterns are ASCII-only and checked with fullmatch (``\d`` would take any Unicode digit, ``$`` a trailing newline).
# They are also the JSON Schema patterns of the published API document.
_MONEY = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,4})?$")
# Characters refused in text, by Unicode general category: controls (Cc: NUL, CR, LF, TAB, ...), format characters
# (Cf: bidi overrides such as U+202E, zero-width spaces, the BOM, ...), line and paragraph separators (Zl, Zp) and
# lone surrogates (Cs). Names may keep the zero-width (non-)joiner, which Persian, Indic scripts and emoji sequences
# need. https://www.unicode.org/reports/tr44/#General_Category_Values
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_NAME_JOINERS = frozenset("\u200c\u200d")
# The same rule for the published document (Unicode 14 code points of those categories, the Basic Multilingual Plane;
# the validator's category check is the authority; lone surrogates never get past JSON decoding). A JSON Schema
# ``pattern`` matches anywhere, hence the anchors.
_REFUSED_BMP = (
    r"\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    r"\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
)
# Characters that show nothing by themselves, allowed beside visible ones but never alone: Unicode's
# Default_Ignorable_Code_Point not refused above (the Hangul fillers U+115F, U+1160, U+3164 and U+FFA0, variation
# selectors, the combining grapheme joiner, the zero-width joiners of names, ...) and the braille blank U+2800.
# https://www.unicode.org/reports/tr44/#Default_Ignorable_Code_Point
_INVISIBLE_BMP = (
    r"\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200c\u200d\u2065\u2800\u3164\ufe00-\ufe0f\uffa0\ufff0-\ufff8"
)
_INVISIBLE = re.compile(rf"[\s{_INVISIBLE_BMP}\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]*")
# Text is stripped of Unicode White_Space (the blanks not refused already); what is left must show something.
_VISIBLE = rf"[^{_REFUSED_BMP} \xa0\u1680\u2000-\u200a\u202f\u205f\u3000{_INVISIBLE_BMP}]"
_TEXT_PATTERN = rf"^[^{_REFUSED_BMP}]*{_VISIBLE}[^{_REFUSED_BMP}]*$"
_NAME_PATTERN = _TEXT_PATTERN.replace(r"\u200b-\u200f", r"\u200b\u200e\u200f")


def _money(value: str) -> str:
    if not _MONEY.fullmatch(value):
        raise ValueError("must be a decimal string such as '49.90'")
    return value


def _whole(value: object) -> object:
    """JSON does not tell 2 from 2.0: a whole float counts as an integer; anything else is left to strict int."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _currency(value: str) -> str:
    if value not in ISO_4217:
        raise ValueError("must be an ISO 4217 currency code such as 'EUR'")
    return value


def _clean_text(value: object, allowed: frozenset[str] = frozenset()) -> object:
    """Refuse control, format and line-break characters anywhere (before stripping); NFC-normalise the rest.

    Non-strings are left to the string validator, which refuses them."""
    if not isinstance(value, str):
        return value
    for char in value:
        if unicodedata.category(char) in _REFUSED_CATEGORIES and char not in allowed:
            raise ValueError(f"must not contain control, format or line-break characters (found U+{ord(char):04X})")
    return unicodedata.normalize("NFC", value)


def _clean_name(value: object) -> object:
    return _clean_text(value, _NAME_JOINERS)


def _visible(value: str) -> str:
    if _INVISIBLE.fullmatch(value):
        raise ValueError("must contain a visible character, not only blanks, fillers or invisible marks")
    return value


Money = Annotated[str, Field(strict=True, json_schema_extra={"pattern": _MONEY.pattern}), AfterValidator(_money)]
Currency = Annotated[str, Field(strict=True, json_schema_extra={"enum": sorted(ISO_4217)}), AfterValidator(_currency)]
# Free text: NFC, no control/format/line-break characters, stripped, 1-200 characters (the limit applies after NFC),
# something visible among them.
Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(json_schema_extra={"pattern": _TEXT_PATTERN}),
    BeforeValidator(_clean_text),
    AfterValidator(_visible),
]
# A person's or a product's name: Text that may also hold the zero-width (non-)joiner.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(json_schema_extra={"pattern": _NAME_PATTERN}),
    BeforeValidator(_clean_name),
    AfterValidator(_visible),
]
Locale = Literal["en", "de"]


class Contract(BaseModel):
    """Base of every boundary model: unknown fields are an error, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Item(Contract):
    sku: Text
    name: Name
    quantity: Annotated[int, Field(strict=True, gt=0, le=10_000), BeforeValidator(_whole)]
    unit_price: Money


class Purchase(Contract):
    order_id: Text
    purchased_at: AwareDatetime
    currency: Currency
    total: Money
    items: Annotated[list[Item], Field(min_length=1, max_length=100)]


class _Person(Contract):
    """The customer: who they are, and where the channels that deliver to them reach them."""

    # Customer adds one optional field per address kind (``registry.address_kinds()``).
    id: Text
    name: Name


if TYPE_CHECKING:

    class Customer(_Person):
        def __getattr__(self, field: str) -> str | None: ...

else:
    Customer = create_model(
        "Customer",
        __base__=_Person,
        __doc__=_Person.__doc__,
        # An address the customer has not is left out of the wire form, not written as null: a reader from before
        # its address kind existed (extra="forbid") still reads the records of customers who have none.
        **{
            field: (kind.annotation | None, Field(default=None, exclude_if=lambda value: value is None))
            for field, kind in address_kinds().items()
        },
    )


class NotificationRequest(Contract):
    """Body of ``POST /v1/notifications``."""

    id: UUID
    purchase: Purchase
    customer: Customer
    channels: Annotated[list[Channel], Field(min_length=1, max_length=len(Channel))] | None = None
    locale: Locale = "en"

    @model_validator(mode="after")
    def _channels_have_addresses(self) -> NotificationRequest:
        for channel in self.channels or ():
            kind = address_of(channel)
            if kind and getattr(self.customer, kind.field) is None:
                raise ValueError(f"channel '{channel}' needs customer.{kind.field}")
        if self.channels is not None and len(set(self.channels)) != len(self.channels):
            raise ValueError("channels must not repeat")
        if not self.requested_channels():
            fields = " or ".join(f"customer.{field}" for field in address_kinds())
            raise ValueError(f"no channel: give {fields}, or list channels")
        return self

    @model_validator(mode="after")
    def _addresses_accepted(self) -> NotificationRequest:
        """Each requested channel's own check of the customer's address (e.g. SMS fraud limits), as an error on
        that ``customer`` field. (A ValidationError raised here keeps its locations; pydantic-core passes it on.)"""
        for channel in self.requested_channels():
            declared = spec(channel)
            kind, check = declared.address, declared.check_address
            address = getattr(self.customer, kind.field) if kind else None
            if kind is None or check is None or address is None:
                continue
            try:
                check(address)
            except AddressRefusedError as exc:
                error = PydanticCustomError("address_refused", "{reason}", {"reason": f"{channel}: {exc}"})
                details = InitErrorDetails(type=error, loc=("customer", kind.field), input=address)
                raise ValidationError.from_exception_data(type(self).__name__, [details]) from None
        return self

    def requested_channels(self) -> list[Channel]:
        """The channels asked for, or by default every channel the customer has an address for."""
        if self.channels is not None:
            return list(self.channels)
        return [
            channel
            for channel in Channel
            if (kind := address_of(channel)) is not None and getattr(self.customer, kind.field) is not None
        ]


CallerId = Annotated[str, StringConstraints(pattern=CALLER_ID_PATTERN)]


@dataclass(frozen=True)
class NotificationKey:
    """A notification in its caller's namespace: what its status items and idempotency records are keyed by.

    Another caller's notification with the same id is another key. A v1 envelope (no caller) is keyed by its
    bare id instead."""

    caller: str
    id: UUID

    def __str__(self) -> str:
        return f"{self.caller}/{self.id}"


# A notification as its status is keyed: in its caller's namespace, or by its bare id (v1 envelopes, no caller).
NotificationRef = NotificationKey | UUID


def notification_id_of(ref: NotificationRef) -> UUID:
    return ref.id if isinstance(ref, NotificationKey) else ref


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


class DeliveryState(StrEnum):
    """Where a channel of a notification stands. ``sent``: the provider took it; the provider's feedback (email, SMS)
    then moves it on to ``delivered``, ``bounced``, ``complained`` or ``undeliverable``."""

    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNDELIVERABLE = "undeliverable"
    FAILED = "failed"


# The provider took the message: nothing may send it again, whatever feedback follows.
HANDED_OVER = frozenset(
    {
        DeliveryState.SENT,
        DeliveryState.DELIVERED,
        DeliveryState.BOUNCED,
        DeliveryState.COMPLAINED,
        DeliveryState.UNDELIVERABLE,
    }
)


class StatusEvent(BaseModel):
    """One step of a channel's history, oldest first: ``accepted``, ``attempt_failed`` (a transient failure, retried),
    ``sent``, the provider's feedback (``delivered``, ``bounced``, ``complained``, ``undeliverable``) or ``failed``
    (for good)."""

    event: str
    at: datetime
    reason: str | None = None


class ChannelStatus(BaseModel):
    channel: Channel
    state: DeliveryState
    attempts: int = 0
    last_error: str | None = None
    provider_message_id: str | None = None
    updated_at: datetime | None = None
    history: list[StatusEvent] = Field(default_factory=list)
    history_dropped: int = Field(
        0,
        description="Events recorded between the first and the last 20 that the history no longer holds (a long "
        "outage adds one per retry); 0 when it holds them all.",
    )


class NotificationStatus(BaseModel):
    id: UUID
    channels: list[ChannelStatus]


class Accepted(BaseModel):
    """Body of the 202 answer."""

    id: UUID
    status: Literal["accepted"] = "accepted"
    channels: list[Channel]
    correlation_id: str
    accepted_at: datetime
