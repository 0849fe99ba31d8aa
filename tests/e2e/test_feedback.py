"""Provider feedback on the local stack: the local SES reports each email as SES would (its mailbox simulator's
addresses bounce or complain: https://docs.aws.amazon.com/ses/latest/dg/send-an-email-from-console.html#send-email-simulator)
through EventBridge's event to the feedback function (https://docs.aws.amazon.com/ses/latest/dg/monitoring-eventbridge.html),
and GET shows the provider's verdict; a bounced address is never mailed again.
"""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.test_local_stack import call, eventually, local_ses_messages, states
from tests.support import sample_request

pytestmark = pytest.mark.e2e


def post_email(api: str, address: str) -> str:
    body = sample_request(channels=["email"])
    body["customer"]["email"] = address
    status, answer = call("POST", f"{api}/v1/notifications", body)
    assert status == 202, answer
    return str(body["id"])


def email_state(api: str, notification_id: str, wanted: str) -> dict | None:
    email = states(api, notification_id).get("email")
    return email if email and email["state"] == wanted else None


def test_a_delivered_email_turns_delivered(local_stack):
    api = local_stack.info.api_url
    nid = post_email(api, f"success+{uuid.uuid4().hex[:8]}@simulator.amazonses.com")
    email = eventually(lambda: email_state(api, nid, "delivered"))
    assert email, states(api, nid)


def test_a_bounce_address_turns_bounced_and_is_not_mailed_again(local_stack):
    api = local_stack.info.api_url
    address = f"bounce+{uuid.uuid4().hex[:8]}@simulator.amazonses.com"
    # Given an email to the simulator's bounce address
    first = post_email(api, address)
    # Then the local SES's bounce event turns it bounced
    email = eventually(lambda: email_state(api, first, "bounced"))
    assert email, states(api, first)
    assert "Permanent bounce" in (email["last_error"] or "")
    # When the shop mails the same address again
    second = post_email(api, address)
    # Then nothing is sent: the channel failed for good, reason "suppressed"
    email = eventually(lambda: email_state(api, second, "failed"))
    assert email, states(api, second)
    assert email["last_error"] == "suppressed"
    received = [m for m in local_ses_messages(local_stack) if m["to"] == [address]]
    assert len(received) == 1
    assert [event["type"] for event in received[0]["events"]] == ["Bounce"]


def test_a_complaint_address_turns_complained(local_stack):
    api = local_stack.info.api_url
    nid = post_email(api, f"complaint+{uuid.uuid4().hex[:8]}@simulator.amazonses.com")
    email = eventually(lambda: email_state(api, nid, "complained"))
    assert email, states(api, nid)


def test_an_sms_turns_delivered_from_its_delivery_log(local_stack):
    # SNS's delivery status log line for the SMS (https://docs.aws.amazon.com/sns/latest/dg/sms_stats_cloudwatch.html)
    # reaches the feedback function as a CloudWatch Logs subscription would hand it over
    api = local_stack.info.api_url
    body = sample_request(channels=["sms"])
    status, answer = call("POST", f"{api}/v1/notifications", body)
    assert status == 202, answer
    nid = str(body["id"])
    sms = eventually(lambda: (states(api, nid).get("sms") or {}).get("state") == "delivered")
    assert sms, states(api, nid)
    assert states(api, nid)["sms"]["provider_message_id"] in local_stack.sns.reported
