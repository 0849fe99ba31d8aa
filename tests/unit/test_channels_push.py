"""Push channel: the endpoint ARN it accepts, the SNS request per platform, and how SNS errors are mapped.

SNS Publish with ``MessageStructure="json"``: https://docs.aws.amazon.com/sns/latest/api/API_Publish.html;
platform payloads: https://docs.aws.amazon.com/sns/latest/dg/sns-fcm-v1-payloads.html (FCM v1) and
https://docs.aws.amazon.com/sns/latest/dg/mobile-push-send-custommessage.html; TTL attributes:
https://docs.aws.amazon.com/sns/latest/dg/sns-ttl.html; errors:
https://docs.aws.amazon.com/sns/latest/api/API_Publish.html#API_Publish_Errors.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from pydantic import TypeAdapter, ValidationError

from notifications.channels.push import PUSH_ENDPOINT, PushEndpoint
from notifications.channels.push.sender import PushSender
from notifications.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.registry import Channel, address_of
from tests.channel_support import channel_message, channel_settings

ENDPOINT = "arn:aws:sns:us-east-1:123456789012:endpoint/{platform}/shop-app/5e3e9847-3183-3f18-a7e8-671c3a57d4b3"
GCM, APNS, APNS_SANDBOX = (ENDPOINT.format(platform=p) for p in ("GCM", "APNS", "APNS_SANDBOX"))


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


def push_message(endpoint: str = GCM, **changes: Any):
    customer = {"id": "c-42", "name": "Ada", "push_endpoint": endpoint}
    return channel_message(Channel.PUSH, customer=customer, **changes)


def sender(sns: FakeSns, **env: str) -> PushSender:
    return PushSender(channel_settings(Channel.PUSH, **env), sns)


# ------------------------------------------------------------------------------------------------- the address


def test_the_channel_delivers_to_the_customer_push_endpoint_counted_as_written():
    assert address_of(Channel.PUSH) is PUSH_ENDPOINT
    assert PUSH_ENDPOINT.field == "push_endpoint"
    # ARNs are case-sensitive: the quota does not fold case
    assert PUSH_ENDPOINT.quota_key(GCM.replace("shop-app", "Shop-App")) != PUSH_ENDPOINT.quota_key(GCM)
    assert PUSH_ENDPOINT.quota_key(GCM) == GCM


@pytest.mark.parametrize(
    "arn",
    [
        GCM,
        APNS,
        APNS_SANDBOX,
        "arn:aws-us-gov:sns:us-gov-west-1:123456789012:endpoint/GCM/a.b_c-d/00000000-0000-4000-8000-000000000000",
        "arn:aws-cn:sns:cn-north-1:123456789012:endpoint/APNS/app/00000000-0000-4000-8000-000000000000",
    ],
)
def test_platform_endpoint_arns_are_accepted_as_written(arn):
    assert TypeAdapter(PushEndpoint).validate_python(arn) == arn


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:sns:us-east-1:123456789012:orders",  # a topic
        "arn:aws:sns:us-east-1:123456789012:app/GCM/shop-app",  # the platform application
        ENDPOINT.format(platform="ADM"),  # a platform the sender writes no payload for
        ENDPOINT.format(platform="gcm"),
        GCM.replace("123456789012", "12345678901"),
        GCM.replace("us-east-1", "US-EAST-1"),
        GCM.replace(":sns:", ":sqs:"),
        GCM.replace("5e3e9847", "5E3E9847"),
        GCM.replace("/shop-app/", "/shop app/"),
        GCM.replace("/shop-app/", "//"),
        GCM + "\n",
        " " + GCM,
        GCM + "/extra",
        "arn:aws:sns:eu-central-1:123456789012:endpoint/GCM/shop-app/5e3e9847",
    ],
)
def test_anything_else_is_refused(arn):
    with pytest.raises(ValidationError, match="SNS platform endpoint ARN"):
        TypeAdapter(PushEndpoint).validate_python(arn)


# ------------------------------------------------------------------------------------------------- the request


def test_a_gcm_endpoint_gets_an_fcm_v1_message_and_the_default_text():
    # Given the push sender and a customer with an FCM endpoint
    sns = FakeSns()
    message = push_message(GCM)

    # When the message is sent
    receipt = sender(sns).send(message)

    # Then SNS got one JSON-structured publish to the endpoint, with the FCM TTL attribute
    [call] = sns.calls
    assert call["TargetArn"] == GCM
    assert call["MessageStructure"] == "json"
    assert call["MessageAttributes"] == {"AWS.SNS.MOBILE.FCM.TTL": {"DataType": "String", "StringValue": "86400"}}
    assert receipt.provider_message_id == "sns-1"
    # And the message holds the default text and the GCM payload (itself a JSON string) and nothing else
    structured = json.loads(call["Message"])
    assert set(structured) == {"default", "GCM"}
    order_id = message.purchase.order_id
    body = "Hi Ada, thank you for your order: 2 item(s), total 49.90 EUR."
    assert structured["default"] == body
    assert json.loads(structured["GCM"]) == {
        "fcmV1Message": {
            "message": {
                "notification": {"title": f"Order {order_id} confirmed", "body": body},
                "data": {"notification_id": str(message.notification_id), "order_id": order_id},
            }
        }
    }


@pytest.mark.parametrize(("endpoint", "platform"), [(APNS, "APNS"), (APNS_SANDBOX, "APNS_SANDBOX")])
def test_an_apns_endpoint_gets_an_alert_of_its_environment(endpoint, platform):
    # Given an Apple endpoint, a German customer and a TTL of an hour
    sns = FakeSns()
    message = push_message(endpoint, locale="de")

    # When the message is sent
    sender(sns, PUSH_TTL_SECONDS="3600").send(message)

    # Then the payload is under the endpoint's own platform key, an alert with the German texts and the ids
    [call] = sns.calls
    structured = json.loads(call["Message"])
    assert set(structured) == {"default", platform}
    order_id = message.purchase.order_id
    body = "Hallo Ada, vielen Dank für Ihre Bestellung: 2 Artikel, Summe 49.90 EUR."
    assert json.loads(structured[platform]) == {
        "aps": {"alert": {"title": f"Bestellung {order_id} bestätigt", "body": body}, "sound": "default"},
        "notification_id": str(message.notification_id),
        "order_id": order_id,
    }
    assert call["MessageAttributes"] == {
        f"AWS.SNS.MOBILE.{platform}.TTL": {"DataType": "String", "StringValue": "3600"}
    }


def test_a_name_with_json_syntax_stays_text_in_every_layer():
    # Given a customer name with quotes and braces
    sns = FakeSns()
    message = channel_message(
        Channel.PUSH, customer={"id": "c", "name": 'Ada "}{\\', "push_endpoint": APNS}, locale="en"
    )

    # When it is sent, the platform payload decodes to the very name
    sender(sns).send(message)
    payload = json.loads(json.loads(sns.calls[0]["Message"])["APNS"])
    assert payload["aps"]["alert"]["body"].startswith('Hi Ada "}{\\, thank you')


def test_a_message_without_a_valid_endpoint_is_permanent_and_never_published():
    sns = FakeSns()
    message = push_message().model_copy(update={"recipient": "arn:aws:sns:us-east-1:123456789012:orders"})
    with pytest.raises(PermanentDeliveryError, match="invalid push recipient"):
        sender(sns).send(message)
    assert sns.calls == []


# ------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        ("EndpointDisabled", 400, "push endpoint disabled: the push service reported its device token invalid"),
        ("NotFound", 404, "push endpoint not found: it was deleted"),
        ("PlatformApplicationDisabled", 400, "push platform application disabled"),
    ],
)
def test_a_disabled_or_deleted_endpoint_is_permanent_and_named_in_the_reason(code, status, reason):
    with pytest.raises(PermanentDeliveryError) as caught:
        sender(FakeSns(client_error(code, status))).send(push_message())
    assert caught.value.provider_code == code
    assert caught.value.reason.startswith(reason)


@pytest.mark.parametrize(
    "code",
    # ParameterValueInvalid: the code botocore's model gives InvalidParameterValue (channels/sns.py, shared with SMS)
    [
        "InvalidParameter",
        "InvalidParameterValue",
        "ParameterValueInvalid",
        "AuthorizationError",
        "KMSDisabled",
        "KMSAccessDenied",
    ],
)
def test_other_sns_rejections_are_permanent(code):
    with pytest.raises(PermanentDeliveryError) as caught:
        sender(FakeSns(client_error(code, 400))).send(push_message())
    assert caught.value.provider_code == code
    assert caught.value.reason == f"SNS rejected the message: {code}"


@pytest.mark.parametrize(
    ("code", "status"), [("Throttled", 429), ("Throttling", 400), ("ThrottlingException", 400), ("KMSThrottling", 400)]
)
def test_throttling_is_transient_and_slows_the_channel(code, status):
    with pytest.raises(TransientDeliveryError) as caught:
        sender(FakeSns(client_error(code, status))).send(push_message())
    assert caught.value.throttled is True
    assert caught.value.provider_code == code


@pytest.mark.parametrize(
    "error",
    [
        client_error("InternalError", 500),
        client_error("ServiceUnavailable", 503),
        client_error("EndpointDisabled", 500),  # a 5xx is never the request's fault
        EndpointConnectionError(endpoint_url="https://sns.eu-central-1.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://sns.eu-central-1.amazonaws.com"),
    ],
    ids=lambda e: e.response["Error"]["Code"] if isinstance(e, ClientError) else type(e).__name__,
)
def test_server_and_network_errors_are_transient_without_throttling(error):
    with pytest.raises(TransientDeliveryError) as caught:
        sender(FakeSns(error)).send(push_message())
    assert caught.value.throttled is False


def test_an_endpoint_of_another_account_or_region_is_refused_at_ingest_and_by_the_sender():
    # Given this stack's account and region (the local environment's) and endpoints elsewhere
    from notifications.channels.push import PushSettings, foreign_endpoint
    from notifications.channels.push.sender import PushSender
    from notifications.contracts.envelopes import channel_messages
    from notifications.errors import PermanentDeliveryError
    from tests.channel_support import requested

    settings = PushSettings(account_id="123456789012", aws_region="us-east-1")
    own = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/shop-app/47eaa099-2cb6-416d-86dc-283cf0480ff9"
    other_account = own.replace("123456789012", "210987654321")
    other_region = own.replace("us-east-1", "eu-west-1")

    # Then only the own endpoint is this stack's
    assert foreign_endpoint(own, settings) is None
    assert foreign_endpoint(other_account, settings) == "is a platform endpoint of another account"
    assert foreign_endpoint(other_region, settings) == "is a platform endpoint of another region"

    # And the sender refuses a queued record to another account's endpoint before any call
    class NoCalls:
        def publish(self, **request):
            raise AssertionError("published")

    [queued] = channel_messages(
        requested(channels=["push"], customer={"id": "c-1", "name": "Ada", "push_endpoint": own})
    )
    message = queued.model_copy(update={"recipient": other_account})
    with pytest.raises(PermanentDeliveryError, match="another account"):
        PushSender(settings, NoCalls()).send(message)
