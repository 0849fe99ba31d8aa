"""Mobile push through Amazon SNS ``Publish`` to a platform endpoint (``TargetArn``), one payload per platform.

The message is ``MessageStructure="json"``: a JSON object whose keys are push platforms, each value the platform's
own payload as a JSON string, and ``default`` (required) for any other platform
(https://docs.aws.amazon.com/sns/latest/api/API_Publish.html, ``MessageStructure``;
https://docs.aws.amazon.com/sns/latest/dg/mobile-push-send-custommessage.html). It holds ``default`` and the
endpoint's own platform:

- ``GCM``: an FCM HTTP v1 message under ``fcmV1Message``, a notification (title and body) and data (the
  notification and order ids, for the app to open the order)
  (https://docs.aws.amazon.com/sns/latest/dg/sns-fcm-v1-payloads.html);
- ``APNS`` / ``APNS_SANDBOX``: an APNs payload, ``aps.alert`` with title and body, the same ids as custom keys
  beside ``aps`` (https://developer.apple.com/documentation/usernotifications/generating-a-remote-notification).

Texts are ``templates/<locale>/title.txt`` and ``body.txt``. How long the push service keeps trying an offline
device is the platform's TTL message attribute (https://docs.aws.amazon.com/sns/latest/dg/sns-ttl.html).

Errors (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html#API_Publish_Errors):

- ``EndpointDisabled``: SNS disabled the endpoint because the push service reported its token invalid (the app was
  uninstalled, or the token expired) and refuses every publish to it until the app registers again
  (https://docs.aws.amazon.com/sns/latest/api/API_SetEndpointAttributes.html, ``Enabled``); ``NotFound``: the
  endpoint was deleted; ``PlatformApplicationDisabled``: the app's push credentials were refused;
  ``InvalidParameter``: SNS refused the request. All permanent: the record is dead-lettered and the channel's
  status is ``failed``, its reason naming the endpoint's state (``push endpoint disabled: ...``). Not
  ``undeliverable``: that state means the provider took the message, and a send it took is never made again, while
  a redrive after the app registered again must send.
- ``Throttled`` (429), ``Throttling`` and ``KMSThrottling``: SNS asks us to slow down, the channel pauses and the
  record is retried (``TransientDeliveryError(throttled=True)``); 5xx (``InternalError``) and network errors are
  transient.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from notifications import aws
from notifications.channels import sns
from notifications.channels.base import Receipt, recipient, render
from notifications.channels.push import PushSettings, foreign_endpoint, platform_of
from notifications.contracts.envelopes import ChannelMessage
from notifications.errors import PermanentDeliveryError
from notifications.registry import Channel
from notifications.settings import SenderSettings

# What a permanent error says about the endpoint: the reason the channel's status records.
ENDPOINT_STATES = {
    "EndpointDisabled": "push endpoint disabled: the push service reported its device token invalid "
    "(app uninstalled or token expired)",
    "NotFound": "push endpoint not found: it was deleted",
    "PlatformApplicationDisabled": "push platform application disabled: its push credentials were refused",
}

# The TTL message attribute of each platform (https://docs.aws.amazon.com/sns/latest/dg/sns-ttl.html).
TTL_ATTRIBUTES = {
    "GCM": "AWS.SNS.MOBILE.FCM.TTL",
    "APNS": "AWS.SNS.MOBILE.APNS.TTL",
    "APNS_SANDBOX": "AWS.SNS.MOBILE.APNS_SANDBOX.TTL",
}


def fcm_payload(title: str, body: str, data: dict[str, str]) -> dict[str, Any]:
    """The ``GCM`` payload: an FCM HTTP v1 message as SNS takes it (``fcmV1Message``)."""
    return {"fcmV1Message": {"message": {"notification": {"title": title, "body": body}, "data": data}}}


def apns_payload(title: str, body: str, data: dict[str, str]) -> dict[str, Any]:
    """The ``APNS`` / ``APNS_SANDBOX`` payload: an alert with title and body, the data as custom keys."""
    return {"aps": {"alert": {"title": title, "body": body}, "sound": "default"}, **data}


# The payload of each platform an endpoint may be of (``PushEndpoint`` accepts no other).
PLATFORMS = {"GCM": fcm_payload, "APNS": apns_payload, "APNS_SANDBOX": apns_payload}


class PushSender:
    channel = Channel("push")

    def __init__(self, config: PushSettings, sns: Any) -> None:
        self._config = config
        self._refusal = partial(foreign_endpoint, settings=config)
        self._sns = sns

    def request(self, message: ChannelMessage) -> dict[str, Any]:
        """The SNS ``Publish`` arguments for ``message``."""
        endpoint = recipient(self.channel, message, "push", refusal=self._refusal, noun="endpoint")
        platform = platform_of(endpoint)
        title = render(self.channel, message.locale, "title.txt", message)
        body = render(self.channel, message.locale, "body.txt", message)
        data = {"notification_id": str(message.notification_id), "order_id": message.purchase.order_id}
        payload = PLATFORMS[platform](title, body, data)
        structured = {"default": body, platform: json.dumps(payload, ensure_ascii=False, separators=(",", ":"))}
        return {
            "TargetArn": endpoint,
            "MessageStructure": "json",
            "Message": json.dumps(structured, ensure_ascii=False, separators=(",", ":")),
            "MessageAttributes": {
                TTL_ATTRIBUTES[platform]: {"DataType": "String", "StringValue": str(self._config.push_ttl_seconds)}
            },
        }

    def send(self, message: ChannelMessage) -> Receipt:
        request = self.request(message)
        try:
            return sns.publish(self._sns, request)
        except PermanentDeliveryError as error:
            if error.provider_code not in ENDPOINT_STATES:
                raise
            # the reason names the endpoint's state
            raise PermanentDeliveryError(
                ENDPOINT_STATES[error.provider_code], provider_code=error.provider_code
            ) from error


def create(settings: SenderSettings, config: PushSettings) -> PushSender:
    return PushSender(config, aws.provider_client("sns"))
