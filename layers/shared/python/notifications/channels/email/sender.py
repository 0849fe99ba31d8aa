"""Email through Amazon SES v2 (``SendEmail`` with simple content: subject, HTML and text bodies)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError

from notifications import aws
from notifications.channels.base import Receipt, render
from notifications.channels.email import EmailSettings
from notifications.errors import PermanentDeliveryError
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


class EmailRecipient(BaseModel):
    address: Email


class EmailSender:
    channel = Channel("email")

    def __init__(self, config: EmailSettings, ses: Any) -> None:
        self._from = config.email_from_address
        self._configuration_set = config.ses_configuration_set
        self._ses = ses

    def send(self, message: ChannelMessage) -> Receipt:
        try:
            recipient = EmailRecipient(address=message.recipient or "")
        except ValidationError as exc:
            raise PermanentDeliveryError("invalid email recipient") from exc
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
            "EmailTags": [{"Name": "notification_id", "Value": str(message.notification_id)}],
        }
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        try:
            response = self._ses.send_email(**request)
        except (ClientError, BotoCoreError) as exc:
            raise aws.provider_error(exc, "SES", permanent=_PERMANENT, throttled=_THROTTLED) from exc
        return Receipt(provider_message_id=response.get("MessageId"))


def create(settings: SenderSettings, config: EmailSettings) -> EmailSender:
    return EmailSender(config, aws.provider_client("sesv2"))
