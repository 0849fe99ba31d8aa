"""Email through Amazon SES v2: one message with a subject, an HTML and a text body, to ``customer.email``.

The channel owns that address: ``Email`` checks its syntax and keeps it as written but for the domain, which is
lower-cased (domains are case-insensitive, RFC 5321 section 2.4). The recipient quota counts ``mailbox``: the local
part case-folded and its sub-address tag (``+...``) dropped, so ``Ada+1@x`` and ``ada+2@x`` count as ``ada@x``.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from notifications.env import EnvModel
from notifications.registry import AddressKind, ChannelSpec

# ASCII only, checked with fullmatch; also the pattern of the API document.
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


def _email(value: str) -> str:
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        raise ValueError("must be a valid email address")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def mailbox(address: str) -> str:
    """The mailbox ``address`` reaches, for counting: sub-address tag dropped, case-folded. Providers deliver
    ``local+tag@domain`` to ``local@domain`` (RFC 5233 sub-addressing); most treat the local part case-insensitively.
    """
    local, _, domain = address.rpartition("@")
    return f"{local.split('+', 1)[0] or local}@{domain}".casefold()


Email = Annotated[
    str, Field(strict=True, json_schema_extra={"pattern": _EMAIL.pattern, "maxLength": 254}), AfterValidator(_email)
]


class EmailSettings(EnvModel):
    # A verified SES identity (the ``SesIdentity`` template parameter).
    email_from_address: Email
    # The SES configuration set whose event destination reports deliveries, bounces and complaints to the feedback
    # function (template.yaml's SesConfigurationSet); without it the channel never gets past ``sent``.
    ses_configuration_set: str | None = None
    # Addresses never to mail again (notifications.suppression), checked before each send.
    suppression_table_name: str


EMAIL = AddressKind(field="email", annotation=Email, per_hour=10, example="ada@example.com", quota_key=mailbox)

CHANNEL = ChannelSpec(settings=EmailSettings, address=EMAIL)
