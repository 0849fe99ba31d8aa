"""Provider feedback end to end: a purchase through the real broker to SES (moto), then SES's events as
EventBridge hands them to the feedback function, and the next purchase to a bounced address.

SES event records as documented: https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-examples.html
in the EventBridge envelope: https://docs.aws.amazon.com/ses/latest/dg/monitoring-eventbridge.html
SMS delivery logs: https://docs.aws.amazon.com/sns/latest/dg/sms_stats_cloudwatch.html, delivered by a CloudWatch
Logs subscription: https://docs.aws.amazon.com/lambda/latest/dg/services-cloudwatchlogs.html
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from devstack import aws_resources, ses_events
from devstack.apigw import http_api_event, http_result
from devstack.consume import read_topic
from devstack.lambda_context import LocalLambdaContext
from devstack.msk_events import build_event
from notifications import aws
from notifications.contracts.keys import NotificationKey
from notifications.contracts.status_view import DeliveryState, NotificationStatus
from notifications.errors import TransientDeliveryError
from notifications.registry import Channel
from notifications.status import DynamoStatusView, StatusTable
from notifications.suppression import address_key
from tests.channel_support import build_sender, channel_message
from tests.support import caller_id, sample_request

CLUSTER_ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/notifications/abcd1234-0000-0000-0000-000000000000-1"


@pytest.fixture
def sent_requests(moto_aws) -> list[dict[str, Any]]:
    """The parameters of every SES SendEmail the email sender makes (what SES would echo in its events)."""
    calls: list[dict[str, Any]] = []
    aws.provider_client("sesv2").meta.events.register(
        "provide-client-params.sesv2.SendEmail", lambda params, **_: calls.append(params)
    )
    return calls


def deliver(bootstrap: str, monkeypatch: pytest.MonkeyPatch, channel: str, **customer: str) -> NotificationKey:
    """Post one purchase for ``channel`` and run it through ingest, fanout and the channel's sender."""
    import fanout_handler
    import ingest_handler
    import sender_handler

    body = sample_request(channels=[channel])
    body["customer"].update(customer)
    nid = body["id"]
    answer = http_result(
        ingest_handler.handler(
            http_api_event(
                "POST", "/v1/notifications", body=json.dumps(body), headers={"content-type": "application/json"}
            ),
            LocalLambdaContext("ingest"),
        )
    )
    assert answer.status == 202, answer.body

    def mine(record: Any) -> bool:
        return record.key == nid.encode()

    requested = read_topic(bootstrap, "notifications.requested", where=mine, until=lambda r: len(r) >= 1)
    fanout_event = build_event(requested, bootstrap_servers=bootstrap, event_source_arn=CLUSTER_ARN)
    assert fanout_handler.handler(fanout_event, LocalLambdaContext("fanout")) == {"batchItemFailures": []}
    records = read_topic(bootstrap, f"notifications.{channel}", where=mine, until=lambda r: len(r) >= 1)
    monkeypatch.setenv("CHANNEL", channel)  # read once, by the sender's first invocation in the test
    sender_event = build_event(records, bootstrap_servers=bootstrap, event_source_arn=CLUSTER_ARN)
    assert sender_handler.handler(sender_event, LocalLambdaContext(f"{channel}-sender")) == {"batchItemFailures": []}
    return NotificationKey(caller_id(), UUID(nid))


def status_of(key: NotificationKey) -> NotificationStatus:
    status = DynamoStatusView(StatusTable(aws_resources.STATUS_TABLE, aws.client("dynamodb"))).get(key)
    assert status is not None
    return status


def ses_mail(request: dict[str, Any], message_id: str) -> dict[str, Any]:
    """The ``mail`` object SES puts in every event of the message sent with ``request``."""
    return ses_events.mail_object(
        message_id,
        source=request["FromEmailAddress"],
        to=request["Destination"]["ToAddresses"],
        subject=request["Content"]["Simple"]["Subject"]["Data"],
        tags=request["EmailTags"],
    )


def feedback(event: dict[str, Any]) -> dict[str, int]:
    import feedback_handler

    result: dict[str, int] = feedback_handler.handler(event, LocalLambdaContext("feedback"))
    return result


def sent_to(address: str) -> int:
    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    return sum(1 for message in sent if address in json.dumps(message.destinations))


def test_a_delivery_event_moves_the_email_to_delivered(kafka_env, sent_requests, monkeypatch):
    # Given an email the sender handed to SES
    key = deliver(kafka_env, monkeypatch, "email", email="dora@example.com")
    (email,) = status_of(key).channels
    assert email.state is DeliveryState.SENT and email.provider_message_id
    # When SES reports its delivery
    record = ses_events.delivery(ses_mail(sent_requests[-1], email.provider_message_id))
    assert feedback(ses_events.eventbridge_event(record)) == {"applied": 1}
    # Then the channel is delivered, at SES's time
    (email,) = status_of(key).channels
    assert email.state is DeliveryState.DELIVERED
    assert email.history[-1].event == "delivered"
    assert email.history[-1].at.isoformat().startswith(record["delivery"]["timestamp"][:19])


def test_a_permanent_bounce_marks_bounced_and_the_next_email_to_that_address_is_not_sent(
    kafka_env, sent_requests, monkeypatch
):
    # Given an email to an address that then bounces permanently
    address = "gone@example.com"
    first = deliver(kafka_env, monkeypatch, "email", email=address)
    (email,) = status_of(first).channels
    record = ses_events.bounce(ses_mail(sent_requests[-1], email.provider_message_id or ""), permanent=True)
    assert feedback(ses_events.eventbridge_event(record)) == {"applied": 1}
    (email,) = status_of(first).channels
    assert email.state is DeliveryState.BOUNCED
    assert email.last_error and "Permanent bounce" in email.last_error
    assert sent_to(address) == 1
    # When the next purchase asks to mail the same address (written differently)
    second = deliver(kafka_env, monkeypatch, "email", email="Gone@Example.com")
    # Then nothing is sent: the channel failed for good with the reason "suppressed", and it is dead-lettered
    (email,) = status_of(second).channels
    assert email.state is DeliveryState.FAILED
    assert email.last_error == "suppressed"
    assert sent_to(address) == 1 and sent_to("Gone@Example.com") == 0
    dead = read_topic(
        kafka_env,
        "notifications.dlq",
        where=lambda r: r.key == str(second.id).encode(),
        until=lambda r: len(r) >= 1,
    )
    assert dead[0].header("dlq-reason") == b"suppressed"


def test_a_complaint_marks_complained_and_suppresses_the_address(kafka_env, sent_requests, monkeypatch):
    address = "angry@example.com"
    first = deliver(kafka_env, monkeypatch, "email", email=address)
    (email,) = status_of(first).channels
    mail = ses_mail(sent_requests[-1], email.provider_message_id or "")
    # Delivered first, then the recipient marks it as spam
    assert feedback(ses_events.eventbridge_event(ses_events.delivery(mail))) == {"applied": 1}
    assert feedback(ses_events.eventbridge_event(ses_events.complaint(mail))) == {"applied": 1}
    (email,) = status_of(first).channels
    assert email.state is DeliveryState.COMPLAINED
    # The suppression list holds a digest of the address, not the address
    item = aws.client("dynamodb").get_item(
        TableName=aws_resources.SUPPRESSION_TABLE, Key={"address_hash": {"S": address_key(address)}}
    )["Item"]
    assert item["reason"]["S"] == "complaint" and address not in json.dumps(item)
    second = deliver(kafka_env, monkeypatch, "email", email=address)
    (email,) = status_of(second).channels
    assert (email.state, email.last_error) == (DeliveryState.FAILED, "suppressed")
    assert sent_to(address) == 1


def test_an_event_for_an_unknown_message_id_is_counted_and_dropped(moto_aws, capsys):
    # Given an SES event naming a message this system never sent (tags of a notification that does not exist)
    mail = ses_events.mail_object(
        "0100018c-unknown-000000",
        source=aws_resources.SENDER_ADDRESS,
        to=["someone@example.com"],
        subject="Your order",
        tags=[
            {"Name": "notification_caller", "Value": caller_id()},
            {"Name": "notification_id", "Value": "8f58c11d-ebc2-4ca7-a934-226e2bb6192c"},
        ],
    )
    # When it reaches the feedback function: no error (EventBridge would retry it), just counted
    assert feedback(ses_events.eventbridge_event(ses_events.delivery(mail))) == {"unknown": 1}
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(m.get("FeedbackUnknownMessage") == [1.0] or m.get("FeedbackUnknownMessage") == 1.0 for m in metrics)
    # And no status row was made up for it
    rows = aws.client("dynamodb").scan(TableName=aws_resources.STATUS_TABLE)["Items"]
    assert rows == []


def test_the_same_event_twice_changes_nothing(kafka_env, sent_requests, monkeypatch):
    key = deliver(kafka_env, monkeypatch, "email", email="twice@example.com")
    (email,) = status_of(key).channels
    event = ses_events.eventbridge_event(
        ses_events.bounce(ses_mail(sent_requests[-1], email.provider_message_id or ""), permanent=True)
    )
    assert feedback(event) == {"applied": 1}
    table = aws.client("dynamodb")
    item_key = {"notification_id": {"S": str(key)}, "channel": {"S": "email"}}
    before = table.get_item(TableName=aws_resources.STATUS_TABLE, Key=item_key)["Item"]
    # When EventBridge delivers it again (at-least-once), or an archive replays it
    assert feedback(event) == {"duplicate": 1}
    assert feedback(json.loads(json.dumps(event))) == {"duplicate": 1}
    # Then the row is exactly as it was: one bounced event in the history, the same time of the last update
    after = table.get_item(TableName=aws_resources.STATUS_TABLE, Key=item_key)["Item"]
    assert after == before
    (email,) = status_of(key).channels
    assert [e.event for e in email.history].count("bounced") == 1


def test_a_late_delivery_after_a_complaint_does_not_move_the_state_back(kafka_env, sent_requests, monkeypatch):
    # EventBridge delivers SES events best effort and out of order
    key = deliver(kafka_env, monkeypatch, "email", email="order@example.com")
    (email,) = status_of(key).channels
    mail = ses_mail(sent_requests[-1], email.provider_message_id or "")
    assert feedback(ses_events.eventbridge_event(ses_events.complaint(mail))) == {"applied": 1}
    assert feedback(ses_events.eventbridge_event(ses_events.delivery(mail))) == {"recorded": 1}
    (email,) = status_of(key).channels
    assert email.state is DeliveryState.COMPLAINED


def test_an_sms_delivery_log_moves_the_sms_to_delivered(kafka_env, moto_aws, monkeypatch):
    # Given an SMS SNS took (the log names only SNS's message id: the status table's index finds the notification)
    key = deliver(kafka_env, monkeypatch, "sms", phone="+4915112345678")
    (sms,) = status_of(key).channels
    assert sms.state is DeliveryState.SENT and sms.provider_message_id
    event = ses_events.cloudwatch_logs_event([ses_events.sms_log_line(sms.provider_message_id, success=True)])
    assert feedback(event) == {"applied": 1}
    (sms,) = status_of(key).channels
    assert sms.state is DeliveryState.DELIVERED


def test_a_failed_sms_is_undeliverable_with_the_carrier_reason(kafka_env, moto_aws, monkeypatch):
    key = deliver(kafka_env, monkeypatch, "sms", phone="+4915112345679")
    (sms,) = status_of(key).channels
    line = ses_events.sms_log_line(sms.provider_message_id or "", success=False)
    assert feedback(ses_events.cloudwatch_logs_event([line], failure=True)) == {"applied": 1}
    (sms,) = status_of(key).channels
    assert sms.state is DeliveryState.UNDELIVERABLE
    assert sms.last_error == "Unknown error attempting to reach phone"


def test_an_event_that_overtakes_the_senders_write_fails_the_invocation_for_a_retry(moto_aws):
    # Given a channel row whose send is not recorded yet (the attempt is under way: no provider message id)
    import feedback_handler

    from notifications.feedback_service import NotYetSentError

    key = NotificationKey(caller_id(), UUID("0b6f6a8e-1d2c-4a0b-9a55-3c4d5e6f7a8b"))
    aws.client("dynamodb").put_item(
        TableName=aws_resources.STATUS_TABLE,
        Item={"notification_id": {"S": str(key)}, "channel": {"S": "email"}, "state": {"S": "accepted"}},
    )
    mail = ses_events.mail_object(
        "0100018c-early-000000",
        source=aws_resources.SENDER_ADDRESS,
        to=["early@example.com"],
        subject="Your order",
        tags=[{"Name": "notification_caller", "Value": key.caller}, {"Name": "notification_id", "Value": str(key.id)}],
    )
    # When its delivery event arrives first, the invocation fails (Lambda retries asynchronous invocations)
    with pytest.raises(NotYetSentError):
        feedback_handler.handler(ses_events.eventbridge_event(ses_events.delivery(mail)), LocalLambdaContext("fb"))
    # And a record that is not an SES event is dropped and counted, not retried
    other = {**ses_events.eventbridge_event(ses_events.delivery(mail)), "source": "aws.ec2"}
    assert feedback(other) == {"unreadable": 1}


def test_an_unreadable_suppression_list_is_a_transient_failure_not_a_dead_letter(moto_aws):
    # Given the email sender, and a suppression table that does not answer
    sender = build_sender(Channel.EMAIL)
    moto_aws.client("dynamodb").delete_table(TableName=aws_resources.SUPPRESSION_TABLE)

    # When it sends, then the failure is transient (waited out and retried), not permanent (DLQ)
    with pytest.raises(TransientDeliveryError, match="suppression list unavailable"):
        sender.send(channel_message(Channel.EMAIL))


def test_a_batch_whose_suppression_read_fails_checks_each_email_on_its_own(moto_aws):
    # Given the email sender, and a suppression table that does not answer
    sender = build_sender(Channel.EMAIL)
    moto_aws.client("dynamodb").delete_table(TableName=aws_resources.SUPPRESSION_TABLE)
    message = channel_message(Channel.EMAIL)

    # When the batch's read fails, the batch goes on; each send then reads the list itself, and fails transiently
    sender.prepare([message])
    with pytest.raises(TransientDeliveryError, match="suppression list unavailable"):
        sender.send(message)
