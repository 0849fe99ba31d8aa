"""SES event records and their EventBridge envelopes, as AWS delivers them, for the local stack and the tests.

The record fields follow the SES event publishing examples
(https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-examples.html); SES v2 sends the same
record as the ``detail`` of an EventBridge event on the default bus with source ``aws.ses`` and a detail type per
event (https://docs.aws.amazon.com/ses/latest/dg/monitoring-eventbridge.html,
https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-ses.html). Message tags appear as ``mail.tags``,
each name mapped to a list of values, next to SES's own ``ses:*`` tags.

SMS: an SNS delivery status log line (https://docs.aws.amazon.com/sns/latest/dg/sms_stats_cloudwatch.html) in the
CloudWatch Logs subscription event a Lambda function receives: ``awslogs.data``, base64 of the gzipped JSON
(https://docs.aws.amazon.com/lambda/latest/dg/services-cloudwatchlogs.html).
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"

DETAIL_TYPES = {
    "Delivery": "Email Delivered",
    "Bounce": "Email Bounced",
    "Complaint": "Email Complaint Received",
    "Reject": "Email Rejected",
    "Rendering Failure": "Email Rendering Failed",
}


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def mail_object(
    message_id: str,
    *,
    source: str,
    to: Sequence[str],
    subject: str,
    tags: Sequence[dict[str, str]] = (),
    configuration_set: str = "notifications",
    sent_at: datetime | None = None,
) -> dict[str, Any]:
    """The ``mail`` object of every event of one message."""
    all_tags: dict[str, list[str]] = {
        "ses:configuration-set": [configuration_set],
        "ses:source-ip": ["192.0.2.0"],
        "ses:from-domain": [source.rpartition("@")[2]],
        "ses:caller-identity": ["notifications-sender"],
    }
    for tag in tags:
        all_tags.setdefault(tag["Name"], []).append(tag["Value"])
    return {
        "timestamp": _iso(sent_at or datetime.now(UTC)),
        "source": source,
        "sourceArn": f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{source}",
        "sendingAccountId": ACCOUNT,
        "messageId": message_id,
        "destination": list(to),
        "headersTruncated": False,
        "headers": [{"name": "From", "value": source}, {"name": "Subject", "value": subject}],
        "commonHeaders": {"from": [source], "to": list(to), "messageId": message_id, "subject": subject},
        "tags": all_tags,
    }


def delivery(mail: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
    return {
        "eventType": "Delivery",
        "mail": mail,
        "delivery": {
            "timestamp": _iso(at or datetime.now(UTC)),
            "processingTimeMillis": 546,
            "recipients": mail["destination"],
            "smtpResponse": "250 ok:  Message 64111812 accepted",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
            "remoteMtaIp": "127.0.2.0",
        },
    }


def bounce(mail: dict[str, Any], *, permanent: bool = True, at: datetime | None = None) -> dict[str, Any]:
    return {
        "eventType": "Bounce",
        "mail": mail,
        "bounce": {
            "bounceType": "Permanent" if permanent else "Transient",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": "5.1.1" if permanent else "4.4.7",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
                for address in mail["destination"]
            ],
            "timestamp": _iso(at or datetime.now(UTC)),
            "feedbackId": f"0100{uuid.uuid4().hex}-000000",
            "reportingMTA": "dsn; mta.example.com",
        },
    }


def complaint(mail: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
    return {
        "eventType": "Complaint",
        "mail": mail,
        "complaint": {
            "feedbackId": f"0100{uuid.uuid4().hex}-000000",
            "complaintSubType": None,
            "complainedRecipients": [{"emailAddress": address} for address in mail["destination"]],
            "timestamp": _iso(at or datetime.now(UTC)),
            "userAgent": "Mozilla/5.0",
            "complaintFeedbackType": "abuse",
            "arrivalDate": _iso(at or datetime.now(UTC)),
        },
    }


def eventbridge_event(record: dict[str, Any], *, configuration_set: str = "notifications") -> dict[str, Any]:
    """The event an EventBridge rule hands its Lambda target for one SES event record."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPES[record["eventType"]],
        "source": "aws.ses",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:ses:{REGION}:{ACCOUNT}:configuration-set/{configuration_set}"],
        "detail": record,
    }


def sms_log_line(message_id: str, *, success: bool = True, at: datetime | None = None) -> str:
    """One SNS SMS delivery status log line (the destination masked, as we never need it)."""
    stamp = (at or datetime.now(UTC)).astimezone(UTC)
    return json.dumps(
        {
            "notification": {
                "messageId": message_id,
                "timestamp": stamp.strftime("%Y-%m-%d %H:%M:%S.") + f"{stamp.microsecond // 1000:03d}",
            },
            "delivery": {
                "mnc": 0,
                "numberOfMessageParts": 1,
                "destination": "+49XXXXXXXXXX",
                "priceInUSD": 0.0075,
                "smsType": "Transactional",
                "mcc": 262,
                "providerResponse": "Message has been accepted by phone carrier"
                if success
                else "Unknown error attempting to reach phone",
                "dwellTimeMs": 599,
                "dwellTimeMsUntilDeviceAck": 1344,
            },
            "status": "SUCCESS" if success else "FAILURE",
        }
    )


def cloudwatch_logs_event(lines: Sequence[str], *, failure: bool = False) -> dict[str, Any]:
    """The CloudWatch Logs subscription event for log lines of the SMS delivery status log group."""
    group = f"sns/{REGION}/{ACCOUNT}/DirectPublishToPhoneNumber" + ("/Failure" if failure else "")
    data = {
        "messageType": "DATA_MESSAGE",
        "owner": ACCOUNT,
        "logGroup": group,
        "logStream": str(uuid.uuid4()),
        "subscriptionFilters": ["sms-delivery-status"],
        "logEvents": [
            {"id": str(index), "timestamp": int(datetime.now(UTC).timestamp() * 1000), "message": line}
            for index, line in enumerate(lines)
        ],
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(data).encode())).decode()}}
