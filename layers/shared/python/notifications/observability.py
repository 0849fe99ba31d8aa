"""Logging, tracing and metrics, configured once, with personal data scrubbed from every log line.

Code logs identifiers (notification id, order id, correlation id), never addresses. As a safety net the log
formatter masks anything shaped like an email address or phone number before a line is written.
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

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
_PHONE = re.compile(r"\+\d{4,}(\d{2})")


def scrub(text: str) -> str:
    """Mask email addresses (``a***@***``) and E.164-like numbers (``+***78``) in free text."""
    return _PHONE.sub(r"+***\1", _EMAIL.sub(r"\1***@***", text))


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


def correlation_id_from_headers(headers: tuple[tuple[str, bytes], ...]) -> str | None:
    for name, value in headers:
        if name == CORRELATION_HEADER:
            return value.decode("utf-8", "replace")
    return None
