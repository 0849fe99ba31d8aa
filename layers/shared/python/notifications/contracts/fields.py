"""The contracts' field types with their validators, and the base of every boundary model.

Money is a decimal string, never a float. Text and names are NFC, free of control, format and line-break characters,
and show something. A currency is an ISO 4217 code, from the list kept as data beside this module.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

# ISO 4217 active codes (https://www.iso.org/iso-4217-currency-codes.html), one a line in iso4217.txt beside this
# module (packaged with it in the layer), read once per execution environment.
ISO_4217 = frozenset(Path(__file__).with_name("iso4217.txt").read_text(encoding="ascii").split())

# A caller id: "c-" and 26 base32 letters of a digest of the principal (``notifications.callers.caller_id``).
CALLER_ID_PATTERN = r"^c-[a-z2-7]{26}$"

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
# What free text and names share: stripped, 1-200 characters (the limit applies after NFC), something visible among
# them. Each adds its characters' rule (a BeforeValidator, so it runs first) and that rule's pattern for the document.
_Printable = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_visible)
]
# Free text: NFC, no control/format/line-break characters.
Text = Annotated[_Printable, Field(json_schema_extra={"pattern": _TEXT_PATTERN}), BeforeValidator(_clean_text)]
# A person's or a product's name: Text that may also hold the zero-width (non-)joiner.
Name = Annotated[_Printable, Field(json_schema_extra={"pattern": _NAME_PATTERN}), BeforeValidator(_clean_name)]
# How many of an item: a positive whole number (2.0 counts as 2), at most 10,000.
Quantity = Annotated[int, Field(strict=True, gt=0, le=10_000), BeforeValidator(_whole)]
Locale = Literal["en", "de"]
CallerId = Annotated[str, StringConstraints(pattern=CALLER_ID_PATTERN)]


class Contract(BaseModel):
    """Base of every boundary model: unknown fields are an error, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
