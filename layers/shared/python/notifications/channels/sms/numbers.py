"""Which numbers an SMS may go to, by Google's libphonenumber (the ``phonenumberslite`` distribution: the numbering
plan without the geocoding, carrier and time-zone data this check does not use).

Refused: anything the numbering plan does not know as a valid number; short codes; every number type but mobile
(premium-rate, shared-cost, toll-free, UAN, VoIP, personal and pager numbers and fixed lines); countries outside the
allowlist. The reasons name the kind of number, never the number itself (they reach logs and HTTP answers).
"""

from __future__ import annotations

from collections.abc import Set

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, shortnumberinfo

# Number types an SMS reaches. North American numbers do not tell mobile from fixed line (FIXED_LINE_OR_MOBILE).
SMS_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_TYPE_NAMES = {value: name.lower().replace("_", "-") for name, value in vars(PhoneNumberType).items() if name.isupper()}


def canonical(number: str) -> str:
    """``number`` (E.164 syntax) as the numbering plan writes it in E.164: a national trunk prefix after the country
    code dropped (``+49015112345678`` is ``+4915112345678``), as the network routes it. Unparseable: unchanged."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(number, None), phonenumbers.PhoneNumberFormat.E164)
    except NumberParseException:
        return number


def refusal(number: str, allowed_countries: Set[str]) -> str | None:
    """Why no SMS may be sent to ``number`` (E.164), or None when it may."""
    try:
        parsed = phonenumbers.parse(number, None)
    except NumberParseException:
        return "is not a phone number"
    kind = _kind_refusal(parsed)
    if kind is not None:
        return kind
    country = phonenumbers.region_code_for_number(parsed)
    if country not in allowed_countries:
        return f"is in a country SMS are not sent to ({country})"
    return None


def _kind_refusal(parsed: phonenumbers.PhoneNumber) -> str | None:
    if shortnumberinfo.is_valid_short_number(parsed):
        return "is a short code; SMS go to mobile numbers only"
    if not phonenumbers.is_valid_number(parsed):
        return "is not a valid number in its country's numbering plan"
    kind = phonenumbers.number_type(parsed)
    if kind == PhoneNumberType.PREMIUM_RATE:
        return "is a premium-rate number; SMS go to mobile numbers only"
    if kind not in SMS_TYPES:
        return f"is a {_TYPE_NAMES.get(kind, 'unknown')} number; SMS go to mobile numbers only"
    return None
