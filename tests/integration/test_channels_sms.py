"""SMS channel against moto's SNS: the published SMS, its attributes, and SNS errors as botocore parses them."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from notifications import aws
from notifications.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.registry import Channel
from tests.channel_support import build_sender, channel_message


def sms_messages() -> dict[str, tuple[str, str]]:
    """moto's record of direct SMS publishes: message id -> (phone number, text)."""
    return sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages


def captured_publishes() -> list[dict[str, Any]]:
    """The parameters of every Publish the channel's (cached) SNS client makes from now on."""
    calls: list[dict[str, Any]] = []
    aws.provider_client("sns").meta.events.register(
        "provide-client-params.sns.Publish", lambda params, **_: calls.append(params)
    )
    return calls


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any):
        yield self._body


def answer_publish_with(status: int, code: str) -> None:
    """Make SNS answer every Publish with this error, in SNS's own XML, parsed by botocore as usual.

    (moto still sees the request too: botocore calls every before-send handler and uses the first answer.)"""
    body = (
        '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type>'
        f"<Code>{code}</Code><Message>injected</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
    ).encode()

    def respond(request, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, status, {"Content-Type": "text/xml"}, _Raw(body))

    aws.provider_client("sns").meta.events.register_first("before-send.sns.Publish", respond)


def test_an_sms_is_published_to_the_number_as_transactional(moto_aws):
    # Given the SMS sender as the sender function builds it, with a sender id
    sender = build_sender(Channel.SMS, SMS_SENDER_ID="CoffeeShop")
    calls = captured_publishes()
    message = channel_message(Channel.SMS, locale="de")

    # When a message is sent
    receipt = sender.send(message)

    # Then SNS holds one SMS to the customer's number, in German, under the returned message id
    assert receipt.provider_message_id in sms_messages()
    number, text = sms_messages()[receipt.provider_message_id]
    assert number == "+4915112345678"
    assert (
        text == f"Hallo Ada, vielen Dank für Ihre Bestellung {message.purchase.order_id}: 2 Artikel, Summe 49.90 EUR."
    )
    # And it went out on the transactional route under the sender id
    assert calls[0]["MessageAttributes"] == {
        "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"},
        "AWS.SNS.SMS.SenderID": {"DataType": "String", "StringValue": "CoffeeShop"},
    }


def test_a_long_sms_is_cut_to_the_configured_parts(moto_aws):
    sender = build_sender(Channel.SMS, SMS_MAX_PARTS="1")
    message = channel_message(Channel.SMS, customer={"id": "c", "name": "Ü" * 200, "phone": "+4915112345678"})
    receipt = sender.send(message)
    _, text = sms_messages()[receipt.provider_message_id]
    assert len(text) == 160 and text.endswith("...")


@pytest.mark.parametrize(
    ("status", "code"), [(400, "InvalidParameter"), (400, "ParameterValueInvalid"), (403, "AuthorizationError")]
)
def test_sns_rejections_are_permanent(moto_aws, status, code):
    sender = build_sender(Channel.SMS)
    answer_publish_with(status, code)
    with pytest.raises(PermanentDeliveryError) as caught:
        sender.send(channel_message(Channel.SMS))
    assert caught.value.provider_code == code


@pytest.mark.parametrize(("status", "code"), [(400, "Throttling"), (400, "KMSThrottling"), (500, "InternalError")])
def test_sns_throttling_and_server_errors_are_transient(moto_aws, status, code):
    sender = build_sender(Channel.SMS)
    answer_publish_with(status, code)
    with pytest.raises(TransientDeliveryError) as caught:
        sender.send(channel_message(Channel.SMS))
    assert caught.value.provider_code == code
