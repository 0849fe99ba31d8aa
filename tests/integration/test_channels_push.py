"""Push channel against moto's SNS: a platform endpoint receives the message; a disabled or deleted endpoint is a
permanent failure, as SNS answers Publish then (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html#API_Publish_Errors:
``EndpointDisabled``, ``NotFound``). SNS disables an endpoint itself when the push service reports its token
invalid (https://docs.aws.amazon.com/sns/latest/api/API_SetEndpointAttributes.html, ``Enabled``); here the test
does, as an app's backend would with SetEndpointAttributes."""

from __future__ import annotations

import json

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from devstack import aws_resources
from notifications import aws
from notifications.errors import PermanentDeliveryError
from notifications.registry import Channel
from tests.channel_support import build_sender, channel_message


@pytest.fixture
def endpoints(moto_aws) -> list[str]:
    """The local stack's push endpoints (an FCM one first, then an APNs sandbox one), in moto."""
    return aws_resources.create_push_endpoints(moto_aws.client("sns"), aws_resources.seed_moto_in_process)


def received(endpoint_arn: str) -> dict[str, str]:
    """What moto kept of the messages published to the endpoint: message id -> the message as published."""
    return dict(sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].platform_endpoints[endpoint_arn].messages)


def push_message(endpoint_arn: str, **changes):
    return channel_message(
        Channel.PUSH, customer={"id": "c-42", "name": "Ada", "push_endpoint": endpoint_arn}, **changes
    )


def test_an_fcm_endpoint_receives_the_message_under_its_message_id(endpoints):
    # Given the push sender as its function builds it, and an FCM endpoint
    sender = build_sender(Channel.PUSH)
    message = push_message(endpoints[0])

    # When a message is sent
    receipt = sender.send(message)

    # Then SNS holds it for that endpoint under the returned id: the default text and the FCM v1 payload
    [(message_id, published)] = received(endpoints[0]).items()
    assert message_id == receipt.provider_message_id
    structured = json.loads(published)
    assert structured["default"] == "Hi Ada, thank you for your order: 2 item(s), total 49.90 EUR."
    notification = json.loads(structured["GCM"])["fcmV1Message"]["message"]["notification"]
    assert notification == {"title": f"Order {message.purchase.order_id} confirmed", "body": structured["default"]}


def test_an_apns_sandbox_endpoint_receives_an_alert_in_the_customer_language(endpoints):
    sender = build_sender(Channel.PUSH)
    message = push_message(endpoints[1], locale="de")
    sender.send(message)
    [published] = received(endpoints[1]).values()
    alert = json.loads(json.loads(published)["APNS_SANDBOX"])["aps"]["alert"]
    assert alert["title"] == f"Bestellung {message.purchase.order_id} bestätigt"


def test_a_disabled_endpoint_is_a_permanent_failure_naming_it_disabled(endpoints):
    # Given an endpoint SNS disabled (its token was reported invalid)
    aws.client("sns").set_endpoint_attributes(EndpointArn=endpoints[0], Attributes={"Enabled": "false"})
    sender = build_sender(Channel.PUSH)

    # When a message is sent to it
    with pytest.raises(PermanentDeliveryError) as caught:
        sender.send(push_message(endpoints[0]))

    # Then SNS refused it as EndpointDisabled, a permanent failure whose reason says the endpoint is disabled
    assert caught.value.provider_code == "EndpointDisabled"
    assert caught.value.reason.startswith("push endpoint disabled")
    assert received(endpoints[0]) == {}


def test_a_deleted_endpoint_is_a_permanent_failure_naming_it_gone(endpoints):
    # Given an endpoint the app deleted
    aws.client("sns").delete_endpoint(EndpointArn=endpoints[0])
    sender = build_sender(Channel.PUSH)

    # When a message is sent to it, SNS answers NotFound: permanent
    with pytest.raises(PermanentDeliveryError) as caught:
        sender.send(push_message(endpoints[0]))
    assert caught.value.provider_code == "NotFound"
    assert caught.value.reason == "push endpoint not found: it was deleted"
