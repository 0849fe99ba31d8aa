"""Email through Amazon SES v2: one message with a subject, an HTML and a text body, to ``customer.email``."""

from __future__ import annotations

from notifications.channels import ChannelSpec
from notifications.models import Email
from notifications.settings import EnvModel


class EmailSettings(EnvModel):
    # A verified SES identity (the ``SesIdentity`` template parameter).
    email_from_address: Email
    # The SES configuration set whose event destination reports deliveries, bounces and complaints to the feedback
    # function (template.yaml's SesConfigurationSet); without it the channel never gets past ``sent``.
    ses_configuration_set: str | None = None
    # Addresses never to mail again (notifications.suppression), checked before each send.
    suppression_table_name: str


CHANNEL = ChannelSpec(settings=EmailSettings, address="email")
