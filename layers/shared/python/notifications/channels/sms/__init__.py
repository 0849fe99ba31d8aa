"""SMS through Amazon SNS ``Publish`` to ``customer.phone`` (an E.164 number).

The channel owns that address: ``Phone`` accepts E.164 syntax and keeps the number as the numbering plan writes it
(``+49015112345678`` becomes ``+4915112345678``), which is what is published, sent and counted by the recipient
quota, so spellings of one number share one count.

Fraud limits (SMS pumping): a number is sent to only if it is a valid mobile number of a country in
``SMS_ALLOWED_COUNTRIES``; premium-rate, shared-cost, toll-free and short-code numbers are refused. Ingest refuses
such a number with a 422 on ``customer.phone`` before anything reaches Kafka, and the sender checks again before
``Publish`` (a record already queued, or settings changed meanwhile). The numbering plan is Google's libphonenumber
(``phonenumberslite``), imported on the first check only.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

from notifications.env import EnvModel
from notifications.registry import AddressKind, AddressRefusedError, ChannelSpec

_COUNTRY = re.compile(r"^[A-Z]{2}$")
# ASCII only, checked with fullmatch (``\d`` would take any Unicode digit, ``$`` a trailing newline); also the
# pattern of the API document.
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def _phone(value: str) -> str:
    if not _E164.fullmatch(value):
        raise ValueError("must be an E.164 phone number such as '+4915112345678'")
    from notifications.channels.sms.numbers import canonical  # noqa: PLC0415 - the numbering plan loads on first use

    return canonical(value)


# A phone number in E.164, in its canonical form.
Phone = Annotated[str, Field(strict=True, json_schema_extra={"pattern": _E164.pattern}), AfterValidator(_phone)]


def _countries(value: object) -> object:
    """``"DE, at,CH"`` as ``{"DE", "AT", "CH"}`` (ISO 3166-1 alpha-2 codes)."""
    if not isinstance(value, str):
        return value
    codes = {code.strip().upper() for code in value.split(",") if code.strip()}
    if not codes or not all(_COUNTRY.fullmatch(code) for code in codes):
        raise ValueError("must be a comma-separated list of ISO 3166-1 alpha-2 country codes such as 'DE,AT,CH'")
    return frozenset(codes)


class SmsSettings(EnvModel):
    # Alphanumeric sender id, where the destination country supports one.
    sms_sender_id: str | None = None
    # Longer texts are cut (with an ellipsis) to at most this many concatenated parts.
    sms_max_parts: int = Field(default=3, ge=1, le=10)
    # The countries SMS may go to, per environment (template parameter SmsAllowedCountries). Required: there is no
    # default that would let an unconfigured deployment text the world.
    sms_allowed_countries: Annotated[frozenset[str], BeforeValidator(_countries), Field(min_length=1)]


@cache
def sms_settings() -> SmsSettings:
    """The SMS settings of this execution environment (ingest reads them to check numbers)."""
    return SmsSettings.from_env()


def check_number(number: str) -> None:
    """``AddressRefusedError`` unless an SMS may be sent to ``number`` (a well-formed E.164 number)."""
    from notifications.channels.sms.numbers import refusal  # noqa: PLC0415 - the numbering plan loads on first use

    reason = refusal(number, sms_settings().sms_allowed_countries)
    if reason is not None:
        raise AddressRefusedError(reason)


PHONE = AddressKind(field="phone", annotation=Phone, per_hour=5, example="+4915112345678")

CHANNEL = ChannelSpec(settings=SmsSettings, address=PHONE, check_address=check_number)
