"""Email through Amazon SES v2: one message with a subject, an HTML and a text body, to ``customer.email``."""

from __future__ import annotations

from notifications.channels import ChannelSpec
from notifications.models import Email
from notifications.settings import EnvModel


class EmailSettings(EnvModel):
    # A verified SES identity (the ``SesIdentity`` template parameter).
    email_from_address: Email
    # Optional SES configuration set, e.g. for event destinations.
    ses_configuration_set: str | None = None


CHANNEL = ChannelSpec(settings=EmailSettings, address="email")
