"""SMS through Amazon SNS ``Publish`` to ``customer.phone`` (an E.164 number)."""

from __future__ import annotations

from pydantic import Field

from notifications.channels import ChannelSpec
from notifications.settings import EnvModel


class SmsSettings(EnvModel):
    # Alphanumeric sender id, where the destination country supports one.
    sms_sender_id: str | None = None
    # Longer texts are cut (with an ellipsis) to at most this many concatenated parts.
    sms_max_parts: int = Field(default=3, ge=1, le=10)


CHANNEL = ChannelSpec(settings=SmsSettings, address="phone")
