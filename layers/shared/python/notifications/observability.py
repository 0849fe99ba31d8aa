"""Logging, tracing and metrics, configured once, with personal data scrubbed from every log line.

Code logs identifiers (notification id, order id, correlation id), never addresses. As a safety net the log
formatter masks anything shaped like an email address (any unquoted local part RFC 5322 allows, a top-level domain
with a letter, digits too) or phone number before a line is written: international (``+49 151 1234-5678``,
``0049...``), national with a trunk prefix (``0151 12345678``, ``(030) 123 456``) and North American
(``(415) 555-0123``, ``415.555.0123``), with spaces, dashes, dots, slashes or parentheses between digits.
Digit runs without such a shape (timestamps, offsets, epoch seconds, UUID parts) are left alone.

A caller's correlation id is used only when it is 1-128 characters of ``A-Z a-z 0-9 . _ : -`` starting with a
letter or digit; anything else is replaced by a new id, so what reaches logs, Kafka headers and webhook bodies is
always a plain token.
"""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.logging.types import PowertoolsLogRecord

CORRELATION_HEADER = "correlation-id"

MAX_CORRELATION_ID_LENGTH = 128
CORRELATION_ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_CORRELATION_ID_LENGTH - 1}}}$"
_CORRELATION_ID = re.compile(CORRELATION_ID_PATTERN)

# An address as RFC 5322 lets its local part be written (dot-atom: letters, digits and !#$%&'*+/=?^_`{|}~.-), at a
# domain whose top-level label has a letter, digits allowed ("example.c0m" is a typo, still someone's address);
# "boto3@1.35.0" (a version) is left alone.
_ATEXT = r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]"
_EMAIL = re.compile(rf"({_ATEXT}){_ATEXT}*@(?:[A-Za-z0-9-]+\.)+(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9-]{{2,}}")
# A run of digits with single separators between them, optionally opened by "+" or "(", not glued to a word, a
# number or an id (so UUID groups and timestamp parts never start or end one). _phone() decides if it is a number.
_PHONE_CANDIDATE = re.compile(r"(?<![\w+\-./(])(?:\+|\(\+?)?\d(?:[ .\-/]?\(?\d\)?)*\d(?![\w\-]|[.:]\d)")
_NANP = re.compile(r"\(?\d{3}\)?[ .\-]?\d{3}[ .\-]\d{4}")
_INTERNATIONAL_00 = re.compile(r"00[1-9]")
_NATIONAL_0 = re.compile(r"0[1-9]")
_MIN_DIGITS, _MAX_DIGITS = 7, 15


def _phone(match: re.Match[str]) -> str:
    text = match.group()
    digits = re.sub(r"\D", "", text)
    # International: "+" or the "00" prefix and a country code (never starting with 0). National: the trunk prefix
    # "0" opening a group of 2+ digits, or an area code in parentheses ("0.000123" is a decimal, not a number).
    international = text.startswith(("+", "(+")) or _INTERNATIONAL_00.match(text) is not None
    national = text.startswith("(") or _NATIONAL_0.match(text) is not None
    shaped = international or national or _NANP.fullmatch(text) is not None
    if not shaped or not _MIN_DIGITS <= len(digits) <= _MAX_DIGITS + 2:
        return text
    return ("+" if international else "") + "***" + digits[-2:]


def scrub(text: str) -> str:
    """Mask email addresses (``a***@***``) and phone numbers (``+***78``, national ones ``***78``) in free text."""
    return _PHONE_CANDIDATE.sub(_phone, _EMAIL.sub(r"\1***@***", text))


def mask_email(address: str) -> str:
    return scrub(address)


def mask_phone(number: str) -> str:
    return scrub(number)


class ScrubbingFormatter(LambdaPowertoolsFormatter):
    """Powertools JSON formatter that scrubs personal data from the serialized line."""

    def serialize(self, log: dict[str, Any] | PowertoolsLogRecord) -> str:
        return scrub(super().serialize(log))


# Powertools environment variables (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE) win over these defaults.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "purchase-notifications")
logger = Logger(service=SERVICE, logger_formatter=ScrubbingFormatter())
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "PurchaseNotifications"), service=SERVICE)


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def is_usable_correlation_id(value: str | None) -> bool:
    """True when ``value`` is a correlation id the service may carry: a plain token (see the module docstring)."""
    return value is not None and _CORRELATION_ID.fullmatch(value) is not None


def usable_correlation_id(value: str | None) -> str:
    """The caller's correlation id when it is usable, else a new one."""
    return value if value is not None and is_usable_correlation_id(value) else new_correlation_id()


def correlation_id_from_headers(headers: tuple[tuple[str, bytes], ...]) -> str | None:
    """The record's correlation id, or None when it has none or one that is not a plain token."""
    for name, value in headers:
        if name == CORRELATION_HEADER:
            text = value.decode("utf-8", "replace")
            return text if is_usable_correlation_id(text) else None
    return None
