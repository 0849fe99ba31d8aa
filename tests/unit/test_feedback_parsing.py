"""Reading provider feedback: AWS's documented example records, mapped to the channel state they stand for.

SES event records: https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-examples.html (the same
record is the ``detail`` of the EventBridge event: https://docs.aws.amazon.com/ses/latest/dg/monitoring-eventbridge.html)
SNS SMS delivery status logs: https://repost.aws/knowledge-center/monitor-sns-texts-cloudwatch
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from notifications.contracts.keys import NotificationKey
from notifications.contracts.status_view import DeliveryState
from notifications.feedback import FeedbackError, email_tags, ses_feedback, sms_feedback
from notifications.registry import Channel

MESSAGE_ID = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
CALLER = "c-lu4fhtop5mu326vbi7viu2sado"
NOTIFICATION = "8f58c11d-ebc2-4ca7-a934-226e2bb6192c"

# The documented examples' mail object, with the tags our sender adds next to SES's own.
MAIL: dict[str, Any] = {
    "timestamp": "2017-08-05T00:40:02.012Z",
    "source": "Sender Name <sender@example.com>",
    "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/sender@example.com",
    "sendingAccountId": "123456789012",
    "messageId": MESSAGE_ID,
    "destination": ["recipient@example.com"],
    "headersTruncated": False,
    "headers": [{"name": "From", "value": "Sender Name <sender@example.com>"}],
    "commonHeaders": {
        "from": ["Sender Name <sender@example.com>"],
        "to": ["recipient@example.com"],
        "messageId": MESSAGE_ID,
        "subject": "Message sent from Amazon SES",
    },
    "tags": {
        "ses:configuration-set": ["ConfigSet"],
        "ses:source-ip": ["192.0.2.0"],
        "ses:from-domain": ["example.com"],
        "ses:caller-identity": ["ses_user"],
        "notification_caller": [CALLER],
        "notification_id": [NOTIFICATION],
    },
}

BOUNCE = {
    "eventType": "Bounce",
    "bounce": {
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [
            {
                "emailAddress": "recipient@example.com",
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
            }
        ],
        "timestamp": "2017-08-05T00:41:02.669Z",
        "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
        "reportingMTA": "dsn; mta.example.com",
    },
    "mail": MAIL,
}
COMPLAINT = {
    "eventType": "Complaint",
    "complaint": {
        "complainedRecipients": [{"emailAddress": "recipient@example.com"}],
        "timestamp": "2017-08-05T00:41:02.669Z",
        "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
        "userAgent": "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko)",
        "complaintFeedbackType": "abuse",
        "arrivalDate": "2017-08-05T00:41:02.669Z",
    },
    "mail": MAIL,
}
DELIVERY = {
    "eventType": "Delivery",
    "mail": MAIL,
    "delivery": {
        "timestamp": "2016-10-19T23:21:04.133Z",
        "processingTimeMillis": 11893,
        "recipients": ["recipient@example.com"],
        "smtpResponse": "250 2.6.0 Message received",
        "reportingMTA": "mta.example.com",
    },
}
REJECT = {"eventType": "Reject", "mail": MAIL, "reject": {"reason": "Bad content"}}
RENDERING_FAILURE = {
    "eventType": "Rendering Failure",
    "mail": MAIL,
    "failure": {
        "errorMessage": "Attribute 'attributeName' is not present in the rendering data.",
        "templateName": "MyTemplate",
    },
}
SMS_SUCCESS = {
    "notification": {"messageId": "34d9b400-c6dd-5444-820d-fbeb0f1f54cf", "timestamp": "2016-06-28 00:40:34.558"},
    "delivery": {
        "phoneCarrier": "My Phone Carrier",
        "mnc": 270,
        "destination": "+1XXX5550100",
        "priceInUSD": 0.00645,
        "smsType": "Transactional",
        "mcc": 310,
        "providerResponse": "Message has been accepted by phone carrier",
        "dwellTimeMs": 599,
        "dwellTimeMsUntilDeviceAck": 1344,
    },
    "status": "SUCCESS",
}
SMS_FAILURE = {
    "notification": {"messageId": "1077257a-92f3-5ca3-bc97-6a915b310625", "timestamp": "2016-06-28 00:40:34.559"},
    "delivery": {
        "mnc": 0,
        "destination": "+1XXX5550100",
        "priceInUSD": 0.00645,
        "smsType": "Transactional",
        "mcc": 0,
        "providerResponse": "Unknown error attempting to reach phone",
        "dwellTimeMs": 1420,
        "dwellTimeMsUntilDeviceAck": 1692,
    },
    "status": "FAILURE",
}

KEY = NotificationKey(CALLER, UUID(NOTIFICATION))


def test_a_delivery_is_delivered_at_the_providers_time():
    feedback = ses_feedback(DELIVERY)
    assert (feedback.state, feedback.channel, feedback.notification) == (DeliveryState.DELIVERED, Channel.EMAIL, KEY)
    assert feedback.message_id == MESSAGE_ID
    assert feedback.at == datetime(2016, 10, 19, 23, 21, 4, 133000, tzinfo=UTC)
    assert feedback.suppress == ()


def test_a_permanent_bounce_is_bounced_and_suppresses_the_recipient():
    feedback = ses_feedback(BOUNCE)
    assert feedback.state is DeliveryState.BOUNCED
    assert feedback.reason == "Permanent bounce (General); 5.1.1"
    assert feedback.suppress == ("recipient@example.com",) and feedback.suppress_reason == "bounce"


def test_a_transient_bounce_is_undeliverable_and_suppresses_nothing():
    record = copy.deepcopy(BOUNCE)
    record["bounce"]["bounceType"] = "Transient"
    feedback = ses_feedback(record)
    assert (feedback.state, feedback.suppress) == (DeliveryState.UNDELIVERABLE, ())


def test_a_complaint_is_complained_and_suppresses_the_recipient():
    feedback = ses_feedback(COMPLAINT)
    assert feedback.state is DeliveryState.COMPLAINED
    assert feedback.suppress == ("recipient@example.com",) and feedback.suppress_reason == "complaint"


@pytest.mark.parametrize(("record", "reason"), [(REJECT, "Bad content"), (RENDERING_FAILURE, "rendering failure")])
def test_a_reject_or_a_rendering_failure_is_undeliverable(record, reason):
    feedback = ses_feedback(record)
    assert feedback.state is DeliveryState.UNDELIVERABLE
    assert feedback.reason and reason in feedback.reason


def test_each_event_has_its_own_id_and_copies_of_one_event_share_it():
    ids = {ses_feedback(record).feedback_id for record in (BOUNCE, COMPLAINT, DELIVERY, REJECT, RENDERING_FAILURE)}
    assert len(ids) == 5
    assert ses_feedback(copy.deepcopy(BOUNCE)).feedback_id == ses_feedback(BOUNCE).feedback_id


def test_the_tags_the_sender_sets_come_back_as_the_notification_key():
    tags = {tag["Name"]: [tag["Value"]] for tag in email_tags(KEY)}
    record = copy.deepcopy(DELIVERY)
    record["mail"]["tags"] = {"ses:configuration-set": ["ConfigSet"], **tags}
    assert ses_feedback(record).notification == KEY
    # A message sent without our tags (another application's) names no notification
    record["mail"]["tags"] = {"ses:configuration-set": ["ConfigSet"]}
    assert ses_feedback(record).notification is None


def test_a_record_that_is_not_an_ses_event_is_refused():
    with pytest.raises(FeedbackError):
        ses_feedback({"eventType": "Open", "mail": MAIL})
    with pytest.raises(FeedbackError):
        ses_feedback({"eventType": "Bounce", "mail": MAIL})


def test_sms_delivery_logs_are_delivered_or_undeliverable_with_the_carrier_reason():
    delivered = sms_feedback(json.dumps(SMS_SUCCESS))
    assert (delivered.state, delivered.channel, delivered.notification) == (DeliveryState.DELIVERED, Channel.SMS, None)
    assert delivered.message_id == "34d9b400-c6dd-5444-820d-fbeb0f1f54cf"
    assert delivered.at == datetime(2016, 6, 28, 0, 40, 34, 558000, tzinfo=UTC)
    failed = sms_feedback(json.dumps(SMS_FAILURE))
    assert failed.state is DeliveryState.UNDELIVERABLE
    assert failed.reason == "Unknown error attempting to reach phone"
    with pytest.raises(FeedbackError):
        sms_feedback("REPORT RequestId: 6234bffe Duration: 46.84 ms")
