"""Provider feedback: what SES and SNS report after a send moves the channel on from ``sent``.

Inputs (parsed by the models below into ``Feedback``, which ``notifications.feedback_service`` applies):

- SES v2 event publishing, through an EventBridge destination on the configuration set: the event's ``detail`` is
  the SES event record (``eventType`` Delivery, Bounce, Complaint, Reject or Rendering Failure, with ``mail``).
  https://docs.aws.amazon.com/ses/latest/dg/monitoring-eventbridge.html
  https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html (the record's fields)
- SNS SMS delivery status logs (``sns/<region>/<account>/DirectPublishToPhoneNumber`` and ``.../Failure``), sent to
  the function by a CloudWatch Logs subscription filter: one JSON log line per SMS.
  https://docs.aws.amazon.com/sns/latest/dg/sms_stats_cloudwatch.html
  https://repost.aws/knowledge-center/monitor-sns-texts-cloudwatch (example lines)

Finding the notification of a provider message id: an email carries its notification's key in SES message tags
(``EMAIL_TAGS``), which SES repeats in every event as ``mail.tags``, so email feedback needs no lookup at all; the
status row is only updated on condition that its ``provider_message_id`` is the event's. An SMS delivery log names
only the SNS message id, so SMS feedback looks the row up in the status table's ``provider_message_id`` index.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from notifications.contracts.fields import CALLER_ID_PATTERN
from notifications.contracts.keys import NotificationKey, NotificationRef
from notifications.contracts.status_view import DeliveryState
from notifications.registry import Channel

# SES message tags carrying the notification's key (tag values may hold only ASCII letters, digits, "_" and "-",
# so the key travels as two tags rather than as "<caller>/<id>"):
# https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_MessageTag.html
CALLER_TAG = "notification_caller"
NOTIFICATION_TAG = "notification_id"

# The EventBridge detail types of the SES events the feedback function takes (the rule's pattern lists the same):
# https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-ses.html
SES_DETAIL_TYPES = (
    "Email Delivered",
    "Email Bounced",
    "Email Complaint Received",
    "Email Rejected",
    "Email Rendering Failed",
)

_MAX_REASON = 300
_CALLER = re.compile(CALLER_ID_PATTERN)


def email_tags(notification: NotificationRef) -> list[dict[str, str]]:
    """The SES ``EmailTags`` that bring the notification's key back in every event of the message."""
    if isinstance(notification, NotificationKey):
        return [
            {"Name": CALLER_TAG, "Value": notification.caller},
            {"Name": NOTIFICATION_TAG, "Value": str(notification.id)},
        ]
    return [{"Name": NOTIFICATION_TAG, "Value": str(notification)}]


# --------------------------------------------------------------------------------------------- provider records


class _Record(BaseModel):
    """Provider JSON: unknown fields are ignored (providers add fields), what we read is validated."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class SesMail(_Record):
    message_id: str = Field(alias="messageId")
    timestamp: datetime
    destination: list[str] = Field(default_factory=list)
    tags: dict[str, list[str]] = Field(default_factory=dict)


class SesRecipient(_Record):
    email_address: str = Field(alias="emailAddress")
    status: str | None = None
    diagnostic_code: str | None = Field(default=None, alias="diagnosticCode")


class SesBounce(_Record):
    bounce_type: Literal["Permanent", "Transient", "Undetermined"] = Field(alias="bounceType")
    bounce_sub_type: str = Field(alias="bounceSubType")
    bounced_recipients: list[SesRecipient] = Field(alias="bouncedRecipients")
    timestamp: datetime
    feedback_id: str = Field(alias="feedbackId")


class SesComplaint(_Record):
    complained_recipients: list[SesRecipient] = Field(alias="complainedRecipients")
    timestamp: datetime
    feedback_id: str = Field(alias="feedbackId")
    complaint_feedback_type: str | None = Field(default=None, alias="complaintFeedbackType")


class SesDelivery(_Record):
    timestamp: datetime
    recipients: list[str] = Field(default_factory=list)
    smtp_response: str | None = Field(default=None, alias="smtpResponse")


class SesReject(_Record):
    reason: str


class SesRenderingFailure(_Record):
    error_message: str = Field(alias="errorMessage")
    template_name: str | None = Field(default=None, alias="templateName")


class SesEvent(_Record):
    """An SES event record (the ``detail`` of the EventBridge event)."""

    event_type: Literal["Delivery", "Bounce", "Complaint", "Reject", "Rendering Failure"] = Field(alias="eventType")
    mail: SesMail
    bounce: SesBounce | None = None
    complaint: SesComplaint | None = None
    delivery: SesDelivery | None = None
    reject: SesReject | None = None
    failure: SesRenderingFailure | None = None


class SmsNotification(_Record):
    message_id: str = Field(alias="messageId")
    timestamp: str  # "2016-06-28 00:40:34.558", UTC


class SmsDelivery(_Record):
    provider_response: str | None = Field(default=None, alias="providerResponse")


class SmsDeliveryLog(_Record):
    """One SNS SMS delivery status log line."""

    notification: SmsNotification
    delivery: SmsDelivery = SmsDelivery()
    status: Literal["SUCCESS", "FAILURE"]


# --------------------------------------------------------------------------------------------- feedback


class FeedbackError(Exception):
    """A provider record that is not feedback we can read (logged and counted, never retried)."""


@dataclass(frozen=True)
class Feedback:
    """One provider event about one message, mapped to what it means for the channel."""

    provider: Literal["ses", "sns"]
    message_id: str
    state: DeliveryState
    at: datetime
    feedback_id: str  # the same for every copy of one event
    reason: str | None = None
    channel: Channel | None = None
    # Where the message says which notification it belongs to (SES tags); None: look the message id up.
    notification: NotificationRef | None = None
    # Addresses that must never be mailed again (permanent bounces, complaints).
    suppress: tuple[str, ...] = field(default=(), repr=False)
    suppress_reason: str | None = None


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _reason(*parts: str | None) -> str | None:
    text = "; ".join(part for part in parts if part)
    return text[:_MAX_REASON] or None


def _event_id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _notification_of(tags: dict[str, list[str]]) -> NotificationRef | None:
    ids = tags.get(NOTIFICATION_TAG) or []
    callers = tags.get(CALLER_TAG) or []
    try:
        notification_id = UUID(ids[0]) if ids else None
    except ValueError:
        return None
    if notification_id is None:
        return None
    if callers:
        return NotificationKey(callers[0], notification_id) if _CALLER.fullmatch(callers[0]) else None
    return notification_id


def ses_feedback(detail: dict[str, Any]) -> Feedback:
    """The feedback of one SES event record; ``FeedbackError`` when it is not one we take."""
    try:
        event = SesEvent.model_validate(detail)
    except ValidationError as exc:
        raise FeedbackError(f"not an SES event record we read: {exc.error_count()} errors") from None
    mail = event.mail
    common: dict[str, Any] = {
        "provider": "ses",
        "message_id": mail.message_id,
        "channel": Channel("email"),
        "notification": _notification_of(mail.tags),
    }
    if event.event_type == "Delivery" and event.delivery is not None:
        at = _utc(event.delivery.timestamp)
        return Feedback(
            **common,
            state=DeliveryState.DELIVERED,
            at=at,
            feedback_id=_event_id(mail.message_id, "Delivery", at.isoformat()),
        )
    if event.event_type == "Bounce" and event.bounce is not None:
        bounce = event.bounce
        permanent = bounce.bounce_type == "Permanent"
        codes = ", ".join(r.status for r in bounce.bounced_recipients if r.status)
        return Feedback(
            **common,
            state=DeliveryState.BOUNCED if permanent else DeliveryState.UNDELIVERABLE,
            at=_utc(bounce.timestamp),
            feedback_id=_event_id(mail.message_id, "Bounce", bounce.feedback_id),
            reason=_reason(f"{bounce.bounce_type} bounce ({bounce.bounce_sub_type})", codes),
            suppress=tuple(r.email_address for r in bounce.bounced_recipients) if permanent else (),
            suppress_reason="bounce" if permanent else None,
        )
    if event.event_type == "Complaint" and event.complaint is not None:
        complaint = event.complaint
        return Feedback(
            **common,
            state=DeliveryState.COMPLAINED,
            at=_utc(complaint.timestamp),
            feedback_id=_event_id(mail.message_id, "Complaint", complaint.feedback_id),
            reason=_reason("complaint", complaint.complaint_feedback_type),
            suppress=tuple(r.email_address for r in complaint.complained_recipients),
            suppress_reason="complaint",
        )
    refusals = {
        "Reject": ("rejected by SES", event.reject.reason) if event.reject is not None else None,
        "Rendering Failure": ("rendering failure", event.failure.error_message) if event.failure is not None else None,
    }
    if refusal := refusals.get(event.event_type):
        # A reject or a rendering failure carries no timestamp of its own: the message's is when SES took (and
        # refused) it.
        return Feedback(
            **common,
            state=DeliveryState.UNDELIVERABLE,
            at=_utc(mail.timestamp),
            feedback_id=_event_id(mail.message_id, event.event_type),
            reason=_reason(*refusal),
        )
    raise FeedbackError(f"SES {event.event_type} event without its {event.event_type.lower()} object")


def sms_feedback(line: str) -> Feedback:
    """The feedback of one SNS SMS delivery status log line; ``FeedbackError`` when it is not one."""
    try:
        log = SmsDeliveryLog.model_validate_json(line)
    except ValidationError as exc:
        raise FeedbackError(f"not an SMS delivery status log line: {exc.error_count()} errors") from None
    try:
        at = datetime.strptime(log.notification.timestamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    except ValueError:
        raise FeedbackError("SMS delivery status log line with an unreadable timestamp") from None
    success = log.status == "SUCCESS"
    return Feedback(
        provider="sns",
        message_id=log.notification.message_id,
        state=DeliveryState.DELIVERED if success else DeliveryState.UNDELIVERABLE,
        at=at,
        feedback_id=_event_id(log.notification.message_id, "SMS", log.status, log.notification.timestamp),
        reason=None if success else _reason(log.delivery.provider_response),
        channel=Channel("sms"),
    )
