"""Email through Amazon SES v2 (``SendEmail`` with simple content: subject, HTML and text bodies)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from notifications import aws, feedback
from notifications.channels.base import Receipt, recipient, render
from notifications.channels.email import EmailSettings
from notifications.contracts.envelopes import ChannelMessage
from notifications.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.observability import logger
from notifications.registry import Channel
from notifications.settings import SenderSettings
from notifications.suppression import DynamoSuppressionList, SuppressionListError

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


class Suppressions(Protocol):
    def is_suppressed(self, address: str) -> bool: ...

    def suppressed(self, addresses: Collection[str]) -> set[str]: ...


class EmailSender:
    channel = Channel("email")

    def __init__(self, config: EmailSettings, ses: Any, suppressions: Suppressions) -> None:
        self._from = config.email_from_address
        self._configuration_set = config.ses_configuration_set
        self._ses = ses
        self._suppressions = suppressions
        # The batch's recipients as read from the suppression list by ``prepare`` (address -> suppressed).
        self._checked: dict[str, bool] = {}

    def prepare(self, messages: Sequence[ChannelMessage]) -> None:
        """Read the suppression list for a whole batch at once (``()``: forget it, the batch is over).

        One BatchGetItem instead of one GetItem per email. When it fails, each send reads for itself.
        """
        addresses = {message.recipient for message in messages if message.recipient}
        if not addresses:
            self._checked = {}
            return
        try:
            suppressed = self._suppressions.suppressed(addresses)
        except (BotoCoreError, ClientError, SuppressionListError) as exc:
            logger.warning("suppression list not read for the batch", error=type(exc).__name__)
            self._checked = {}
            return
        self._checked = {address: address in suppressed for address in addresses}

    def send(self, message: ChannelMessage) -> Receipt:
        address = recipient(self.channel, message, "email")
        if self._is_suppressed(message.recipient or "", address):
            raise PermanentDeliveryError(SUPPRESSED)
        locale = message.locale
        request: dict[str, Any] = {
            "FromEmailAddress": self._from,
            "Destination": {"ToAddresses": [address]},
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

    def _is_suppressed(self, given: str, address: str) -> bool:
        checked = self._checked.get(given)
        if checked is not None:
            return checked
        try:
            return self._suppressions.is_suppressed(address)
        except (BotoCoreError, ClientError) as exc:
            # The list cannot be read: not the recipient's fault, so wait and retry rather than dead-letter.
            raise TransientDeliveryError(f"suppression list unavailable: {type(exc).__name__}") from exc


def create(settings: SenderSettings, config: EmailSettings) -> EmailSender:
    suppressions = DynamoSuppressionList(config.suppression_table_name, aws.client("dynamodb"))
    return EmailSender(config, aws.provider_client("sesv2"), suppressions)
