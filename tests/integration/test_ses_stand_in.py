"""The local SES v2 (devstack.providers) through boto3, as the email sender calls it: it keeps each message as
received and publishes SES's events as EventBridge events, following the SES mailbox simulator's addresses
(https://docs.aws.amazon.com/ses/latest/dg/send-an-email-from-console.html#send-email-simulator)."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.providers import SesStandIn, SnsDeliveryLogHook, simulated_events
from notifications.feedback import ses_feedback


@pytest.fixture
def stand_in():
    events: list[dict[str, Any]] = []
    server = SesStandIn(configuration_set="notifications").start()
    server.deliver_events_to(lambda event: events.append(event) or True)
    try:
        yield server, events
    finally:
        server.stop()


def send(url: str, to: str, configuration_set: str | None = "notifications") -> str:
    client = boto3.client(
        "sesv2", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    request: dict[str, Any] = {
        "FromEmailAddress": "orders@shop.example",
        "Destination": {"ToAddresses": [to]},
        "Content": {
            "Simple": {
                "Subject": {"Data": "Your order A-1"},
                "Body": {"Text": {"Data": "Thanks for order A-1"}, "Html": {"Data": "<p>Thanks for order A-1</p>"}},
            }
        },
        "EmailTags": [{"Name": "notification_id", "Value": "8f58c11d-ebc2-4ca7-a934-226e2bb6192c"}],
    }
    if configuration_set:
        request["ConfigurationSetName"] = configuration_set
    message_id: str = client.send_email(**request)["MessageId"]
    return message_id


def wait_for(events: list[Any], count: int) -> list[Any]:
    deadline = time.monotonic() + 5
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return events


def test_a_message_is_kept_as_received_and_readable_over_http(stand_in):
    server, _ = stand_in
    message_id = send(server.url, "ada@example.com")
    with urllib.request.urlopen(f"{server.url}/_local/ses/messages/{message_id}", timeout=5) as answer:
        message = json.loads(answer.read())
    assert message["to"] == ["ada@example.com"] and message["subject"] == "Your order A-1"
    assert message["text"] == "Thanks for order A-1" and message["html"] == "<p>Thanks for order A-1</p>"
    assert message["tags"] == {"notification_id": "8f58c11d-ebc2-4ca7-a934-226e2bb6192c"}
    assert [m["message_id"] for m in server.messages()] == [message_id]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("ada@example.com", ["Delivery"]),
        ("success@simulator.amazonses.com", ["Delivery"]),
        ("bounce+order-17@simulator.amazonses.com", ["Bounce"]),
        ("complaint@simulator.amazonses.com", ["Delivery", "Complaint"]),
    ],
)
def test_events_follow_the_mailbox_simulator_and_read_as_ses_events(stand_in, address, expected):
    server, events = stand_in
    assert simulated_events(address) == expected
    message_id = send(server.url, address)
    published = wait_for(events, len(expected))
    assert [e["detail"]["eventType"] for e in published] == expected
    for event in published:
        assert event["source"] == "aws.ses" and event["detail"]["mail"]["messageId"] == message_id
        feedback = ses_feedback(event["detail"])  # what the feedback function reads
        assert feedback.message_id == message_id
    assert [e["type"] for e in server.message(message_id)["events"]] == expected


def test_without_the_configuration_set_no_event_is_published(stand_in):
    server, events = stand_in
    send(server.url, "bounce@simulator.amazonses.com", configuration_set=None)
    time.sleep(0.6)
    assert events == []


def test_anything_but_simple_content_is_a_bad_request(stand_in):
    server, _ = stand_in
    client = boto3.client(
        "sesv2", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with pytest.raises(ClientError) as error:
        client.send_email(
            FromEmailAddress="orders@shop.example",
            Destination={"ToAddresses": ["ada@example.com"]},
            Content={"Raw": {"Data": b"raw"}},
        )
    assert error.value.response["Error"]["Code"] == "BadRequestException"


def test_sms_delivery_logs_reach_the_function_in_batches_as_cloudwatch_logs_hands_them():
    """CloudWatch Logs hands a subscribed function several log events at once
    (https://docs.aws.amazon.com/lambda/latest/dg/services-cloudwatchlogs.html)."""
    from aws_lambda_powertools.utilities.data_classes import CloudWatchLogsEvent

    # Given the SNS hook reporting to a function
    events: list[dict[str, Any]] = []
    hook = SnsDeliveryLogHook("http://127.0.0.1:1").start()
    hook.deliver_logs_to(lambda event: events.append(event) or True)
    try:
        # When five SMS are published in a burst
        for number in range(5):
            hook.published(f"sms-{number}")
        deadline = time.monotonic() + 10
        while len(hook.reported) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        hook.stop()

    # Then every one is reported once, in fewer invocations than lines, each a SUCCESS line naming its message
    assert hook.reported == [f"sms-{number}" for number in range(5)]
    lines = [line for event in events for line in CloudWatchLogsEvent(event).parse_logs_data().log_events]
    assert len(events) < 5
    assert [json.loads(line.message)["notification"]["messageId"] for line in lines] == hook.reported
    assert {json.loads(line.message)["status"] for line in lines} == {"SUCCESS"}
