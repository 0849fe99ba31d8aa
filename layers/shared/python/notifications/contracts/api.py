"""The HTTP API's models: the body of ``POST /v1/notifications`` (the purchase and the customer it is about, which
the Kafka envelopes carry on) and the 202 answer. The status answer is ``notifications.contracts.status_view``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field, ValidationError, create_model, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from notifications.contracts.fields import Contract, Currency, Locale, Money, Name, Quantity, Text
from notifications.registry import AddressRefusedError, Channel, address_kinds, address_of, spec


class Item(Contract):
    sku: Text
    name: Name
    quantity: Quantity
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


class Accepted(BaseModel):
    """Body of the 202 answer."""

    id: UUID
    status: Literal["accepted"] = "accepted"
    channels: list[Channel]
    correlation_id: str
    accepted_at: datetime
