"""SMS channel: GSM-7/UCS-2 length rules, truncation, the SNS request and how SNS errors are mapped."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from notifications.channels.sms.sender import SmsSender, fit_sms, sms_encoding, sms_parts
from notifications.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.registry import Channel
from tests.channel_support import channel_message, channel_settings


class FakeSns:
    """The SNS client's ``publish`` in memory; raises ``error`` when set."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def publish(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        if self.error is not None:
            raise self.error
        return {"MessageId": f"sns-{len(self.calls)}"}


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Publish"
    )


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Hello Ada, order A-1001: 49.90 EUR", "GSM-7"),
        ("Grüße, Ihre Bestellung über 5 € [neu] {x} ~ | ^ \\", "GSM-7"),
        ("Łódź", "UCS-2"),
        ("Thanks 🎉", "UCS-2"),
        ("Zoë’s order", "UCS-2"),  # noqa: RUF001 - the typographic apostrophe is not GSM-7
    ],
)
def test_encoding_is_gsm7_only_when_every_character_is_in_its_tables(text, encoding):
    assert sms_encoding(text) == encoding


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters take two septets: 160
        ("€" * 81, 2),
        ("a" * 152 + "€" + "a" * 152, 3),  # 306 septets, but the € does not fit part one's last septet
        ("ж" * 70, 1),
        ("ж" * 71, 2),
        ("ж" * 134, 2),
        ("ж" * 135, 3),
        ("🎉" * 35, 1),  # outside the BMP: two UTF-16 units each
        ("🎉" * 36, 2),
    ],
)
def test_parts_follow_the_single_and_concatenated_limits(text, parts):
    assert sms_parts(text) == parts


def test_a_text_that_fits_is_sent_unchanged():
    fitted = fit_sms("a" * 459, max_parts=3)
    assert (fitted.text, fitted.parts, fitted.truncated) == ("a" * 459, 3, False)


def test_a_long_gsm7_text_is_cut_to_the_maximum_parts_with_a_gsm7_ellipsis():
    # Given a text of seven parts
    text = "word " * 200

    # When it is fitted into three parts
    fitted = fit_sms(text, max_parts=3)

    # Then it is as long as three parts allow, ends in "...", and stays GSM-7
    assert fitted.truncated and fitted.parts == 3 and fitted.encoding == "GSM-7"
    assert fitted.text.endswith("word...") and len(fitted.text) <= 3 * 153
    assert len(fitted.text) > 3 * 153 - 10
    assert sms_encoding(fitted.text) == "GSM-7"


def test_a_long_ucs2_text_is_cut_with_an_ellipsis_character():
    fitted = fit_sms("Привет " * 50, max_parts=2)
    assert fitted.truncated and fitted.parts == 2 and fitted.encoding == "UCS-2"
    assert fitted.text.endswith("…") and len(fitted.text) <= 2 * 67


def test_one_part_allows_the_single_message_limit():
    fitted = fit_sms("a" * 400, max_parts=1)
    assert fitted.text == "a" * 157 + "..." and fitted.parts == 1


def test_request_is_a_transactional_publish_to_the_number():
    # Given a sender without a sender id
    sns = FakeSns()
    sender = SmsSender(channel_settings(Channel.SMS), sns)
    message = channel_message(Channel.SMS)

    # When the message is sent
    receipt = sender.send(message)

    # Then SNS got the E.164 number, the rendered text and the transactional route
    [call] = sns.calls
    assert call["PhoneNumber"] == "+4915112345678"
    assert call["Message"].startswith("Hi Ada, thank you for your order " + message.purchase.order_id)
    assert call["MessageAttributes"] == {"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}}
    assert receipt.provider_message_id == "sns-1"


def test_sender_id_is_sent_when_configured():
    sns = FakeSns()
    SmsSender(channel_settings(Channel.SMS, SMS_SENDER_ID="ShopName"), sns).send(channel_message(Channel.SMS))
    assert sns.calls[0]["MessageAttributes"]["AWS.SNS.SMS.SenderID"] == {
        "DataType": "String",
        "StringValue": "ShopName",
    }


def test_a_long_text_is_cut_to_the_configured_parts():
    # Given a very long customer name and at most one part
    sns = FakeSns()
    sender = SmsSender(channel_settings(Channel.SMS, SMS_MAX_PARTS="1"), sns)
    message = channel_message(Channel.SMS, customer={"id": "c", "name": "N" * 200, "phone": "+4915112345678"})

    # When it is sent
    sender.send(message)

    # Then SNS got one part's worth, ending in an ellipsis
    text = sns.calls[0]["Message"]
    assert len(text) == 160 and text.endswith("...")


def test_a_message_without_a_valid_number_is_permanent():
    sns = FakeSns()
    message = channel_message(Channel.SMS).model_copy(update={"recipient": "0151 123"})
    with pytest.raises(PermanentDeliveryError, match="invalid SMS recipient"):
        SmsSender(channel_settings(Channel.SMS), sns).send(message)
    assert sns.calls == []


@pytest.mark.parametrize(
    "code",
    [
        "InvalidParameter",
        "InvalidParameterValue",
        "ParameterValueInvalid",
        "ValidationException",
        "AuthorizationError",
        "EndpointDisabled",
        "KMSDisabled",
        "KMSAccessDenied",
    ],
)
def test_sns_rejections_are_permanent(code):
    sender = SmsSender(channel_settings(Channel.SMS), FakeSns(client_error(code, 400)))
    with pytest.raises(PermanentDeliveryError) as caught:
        sender.send(channel_message(Channel.SMS))
    assert caught.value.provider_code == code


@pytest.mark.parametrize(
    "error",
    [
        client_error("Throttled", 429),
        client_error("ThrottlingException", 400),
        client_error("KMSThrottling", 400),
        client_error("InternalError", 500),
        client_error("ServiceUnavailable", 503),
        client_error("InvalidParameter", 500),  # a 5xx is never the request's fault
        EndpointConnectionError(endpoint_url="https://sns.us-east-1.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://sns.us-east-1.amazonaws.com"),
    ],
    ids=lambda e: e.response["Error"]["Code"] if isinstance(e, ClientError) else type(e).__name__,
)
def test_throttling_server_and_network_errors_are_transient(error):
    sender = SmsSender(channel_settings(Channel.SMS), FakeSns(error))
    with pytest.raises(TransientDeliveryError):
        sender.send(channel_message(Channel.SMS))
