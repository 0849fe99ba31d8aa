"""Email through Amazon SES v2 (``SendEmail`` with simple content: subject, HTML and text bodies)."""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError

from notifications import aws, feedback
from notifications.channels.base import Receipt, render
from notifications.channels.email import EmailSettings
from notifications.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.models import Channel, ChannelMessage, Email
from notifications.settings import SenderSettings

# SES v2 error codes: https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html#API_SendEmail_Errors
# Throttling: https://docs.aws.amazon.com/ses/latest/dg/manage-sending-quotas-errors.html (maximum sending rate)
_THROTTLED = frozenset({"TooManyRequestsException", "Throttling", "ThrottlingException", "LimitExceededException"})
_PERMANENT = frozenset(
    {
        "AccountSuspendedException",
        "MailFromDomainNotVerifiedException",
        "MessageRejected",
        "NotFoundException",
        "BadRequestException",
        "SendingPausedException",
    }
)


# A suppressed address (it bounced permanently or complained: notifications.suppression) is a permanent failure
# with this reason, not a send.
SUPPRESSED = "suppressed"


class EmailRecipient(BaseModel):
    address: Email


class Suppressions(Protocol):
    def is_suppressed(self, address: str) -> bool: ...


class EmailSender:
    channel = Channel("email")

    def __init__(self, config: EmailSettings, ses: Any, suppressions: Suppressions) -> None:
        self._from = config.email_from_address
        self._configuration_set = config.ses_configuration_set
        self._ses = ses
        self._suppressions = suppressions

    def send(self, message: ChannelMessage) -> Receipt:
        try:
            recipient = EmailRecipient(address=message.recipient or "")
        except ValidationError as exc:
            raise PermanentDeliveryError("invalid email recipient") from exc
        try:
            suppressed = self._suppressions.is_suppressed(recipient.address)
        except (BotoCoreError, ClientError) as exc:
            # The list cannot be read: not the recipient's fault, so wait and retry rather than dead-letter.
            raise TransientDeliveryError(f"suppression list unavailable: {type(exc).__name__}") from exc
        if suppressed:
            raise PermanentDeliveryError(SUPPRESSED)
        locale = message.locale
        request: dict[str, Any] = {
            "FromEmailAddress": self._from,
            "Destination": {"ToAddresses": [recipient.address]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": render(self.channel, locale, "subject.txt", message), "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": render(self.channel, locale, "body.txt", message), "Charset": "UTF-8"},
                        "Html": {"Data": render(self.channel, locale, "body.html", message), "Charset": "UTF-8"},
                    },
                }
            },
            # The notification's key comes back in every SES event of the message (notifications.feedback).
            "EmailTags": feedback.email_tags(message.key),
        }
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        try:
            response = self._ses.send_email(**request)
        except (ClientError, BotoCoreError) as exc:
            raise aws.provider_error(exc, "SES", permanent=_PERMANENT, throttled=_THROTTLED) from exc
        return Receipt(provider_message_id=response.get("MessageId"))


def create(settings: SenderSettings, config: EmailSettings) -> EmailSender:
    from notifications.suppression import DynamoSuppressionList  # noqa: PLC0415

    suppressions = DynamoSuppressionList(config.suppression_table_name, aws.client("dynamodb"))
    return EmailSender(config, aws.provider_client("sesv2"), suppressions)
