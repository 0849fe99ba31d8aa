"""SMS through Amazon SNS ``Publish`` to an E.164 number (transactional route, optional sender id).

The text is ``templates/<locale>/message.txt``. Its length is counted the way carriers bill it: GSM-7 when
every character is in the GSM 03.38 basic or extension table (extension characters take two septets), else
UCS-2 (UTF-16 code units). One part holds 160 GSM-7 septets or 70 UCS-2 units; a concatenated message 153 or 67
per part. A text longer than ``sms_max_parts`` parts is cut with an ellipsis instead of becoming an unbounded
multi-part message.

Before ``Publish`` the number is checked against the fraud limits again (``numbers.refusal``): a refused number is
a permanent error and never reaches SNS.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from notifications import aws
from notifications.channels import sns
from notifications.channels.base import Receipt, recipient, render
from notifications.channels.sms import SmsSettings
from notifications.channels.sms.numbers import refusal
from notifications.contracts.envelopes import ChannelMessage
from notifications.registry import Channel
from notifications.settings import SenderSettings

# GSM 03.38 default alphabet (ESC excluded) and its extension table (sent as ESC + character, two septets).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

Encoding = Literal["GSM-7", "UCS-2"]
_SINGLE = {"GSM-7": 160, "UCS-2": 70}
_PART = {"GSM-7": 153, "UCS-2": 67}
_ELLIPSIS = {"GSM-7": "...", "UCS-2": "…"}


def sms_encoding(text: str) -> Encoding:
    return "GSM-7" if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text) else "UCS-2"


def _units(ch: str, encoding: Encoding) -> int:
    if encoding == "GSM-7":
        return 2 if ch in GSM7_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1  # outside the BMP: a UTF-16 surrogate pair


def sms_parts(text: str, encoding: Encoding | None = None) -> int:
    """How many parts ``text`` is sent as; a two-unit character is never split across parts."""
    encoding = encoding or sms_encoding(text)
    units = [_units(ch, encoding) for ch in text]
    if sum(units) <= _SINGLE[encoding]:
        return 1
    parts, used = 1, 0
    for size in units:
        if used + size > _PART[encoding]:
            parts, used = parts + 1, 0
        used += size
    return parts


@dataclass(frozen=True)
class SmsText:
    text: str
    encoding: Encoding
    parts: int
    truncated: bool


def fit_sms(text: str, max_parts: int) -> SmsText:
    """``text`` as sent: unchanged if it fits ``max_parts`` parts, else its longest fitting prefix plus an ellipsis."""
    encoding = sms_encoding(text)
    parts = sms_parts(text, encoding)
    if parts <= max_parts:
        return SmsText(text, encoding, parts, truncated=False)
    ellipsis = _ELLIPSIS[encoding]
    low, high = 0, len(text)
    while low < high:  # the longest prefix whose shortened form fits
        middle = (low + high + 1) // 2
        if sms_parts(text[:middle].rstrip() + ellipsis, encoding) <= max_parts:
            low = middle
        else:
            high = middle - 1
    prefix = text[:low]
    space = prefix.rfind(" ", max(0, low - 20))
    if not text[low].isspace() and space > 0:  # end on a whole word when one ends close by
        prefix = prefix[:space]
    cut = prefix.rstrip() + ellipsis
    return SmsText(cut, encoding, sms_parts(cut, encoding), truncated=True)


class SmsSender:
    channel = Channel("sms")

    def __init__(self, config: SmsSettings, sns: Any) -> None:
        self._sender_id = config.sms_sender_id
        self._max_parts = config.sms_max_parts
        self._refusal = partial(refusal, allowed_countries=config.sms_allowed_countries)
        self._sns = sns

    def request(self, message: ChannelMessage) -> dict[str, Any]:
        """The SNS ``Publish`` arguments for ``message``."""
        number = recipient(self.channel, message, "SMS", refusal=self._refusal, noun="number")
        text = fit_sms(render(self.channel, message.locale, "message.txt", message), self._max_parts)
        attributes = {"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}}
        if self._sender_id:
            attributes["AWS.SNS.SMS.SenderID"] = {"DataType": "String", "StringValue": self._sender_id}
        return {"PhoneNumber": number, "Message": text.text, "MessageAttributes": attributes}

    def send(self, message: ChannelMessage) -> Receipt:
        return sns.publish(self._sns, self.request(message))


def create(settings: SenderSettings, config: SmsSettings) -> SmsSender:
    return SmsSender(config, aws.provider_client("sns"))
