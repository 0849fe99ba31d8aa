"""Amazon SNS ``Publish`` for the channels it carries (SMS to a phone number, mobile push to a platform endpoint).

Its errors are classified here for both, by the codes botocore's service model gives them (InvalidParameterValue
answers ``ParameterValueInvalid``): https://docs.aws.amazon.com/sns/latest/api/API_Publish.html#API_Publish_Errors

- permanent below HTTP 500: the request, the target, the account's access or its KMS key is wrong, and a retry
  changes nothing (a code only another channel's targets cause, a platform application's for SMS, never comes);
- ``Throttled`` (429), ``Throttling`` and ``KMSThrottling``: SNS asks us to slow down, the channel pauses and retries;
- 5xx (``InternalError``), any other code and network errors: transient.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from notifications import aws
from notifications.channels.base import Receipt

THROTTLED = frozenset({"Throttled", "Throttling", "ThrottlingException", "KMSThrottling"})
_REQUEST = frozenset({"InvalidParameter", "InvalidParameterValue", "ParameterValueInvalid", "ValidationException"})
_TARGET = frozenset({"NotFound", "EndpointDisabled", "PlatformApplicationDisabled"})
_ACCOUNT = frozenset({"AuthorizationError", "InvalidSecurity"})
_KMS_KEY = frozenset({"KMSDisabled", "KMSInvalidState", "KMSNotFound", "KMSOptInRequired", "KMSAccessDenied"})
PERMANENT = _REQUEST | _TARGET | _ACCOUNT | _KMS_KEY


def publish(sns: Any, request: dict[str, Any]) -> Receipt:
    """``Publish`` with ``request``: the receipt with SNS's message id, or the provider's error classified."""
    try:
        response = sns.publish(**request)
    except (ClientError, BotoCoreError) as exc:
        raise aws.provider_error(exc, "SNS", permanent=PERMANENT, throttled=THROTTLED) from exc
    return Receipt(provider_message_id=response.get("MessageId"))
