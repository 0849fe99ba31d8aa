"""Amazon SNS ``Publish`` for the channels it carries (SMS to a phone number, mobile push to a platform endpoint)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from notifications import aws
from notifications.channels.base import Receipt


def publish(sns: Any, request: dict[str, Any], *, permanent: frozenset[str], throttled: frozenset[str]) -> Receipt:
    """``Publish`` with ``request``: the receipt with SNS's message id, or the provider's error classified
    (``aws.provider_error``: ``permanent`` and ``throttled`` error codes)."""
    try:
        response = sns.publish(**request)
    except (ClientError, BotoCoreError) as exc:
        raise aws.provider_error(exc, "SNS", permanent=permanent, throttled=throttled) from exc
    return Receipt(provider_message_id=response.get("MessageId"))
