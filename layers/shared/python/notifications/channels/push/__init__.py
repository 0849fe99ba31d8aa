"""Mobile push through Amazon SNS ``Publish`` to ``customer.push_endpoint``, an SNS platform endpoint ARN.

The app registers each device's token with SNS (``CreatePlatformEndpoint``) and hands the shop the endpoint's ARN;
SNS relays a message published to it to the platform's push service (FCM for ``GCM`` endpoints, APNs for ``APNS``
and ``APNS_SANDBOX``). https://docs.aws.amazon.com/sns/latest/dg/mobile-platform-endpoint.html

The channel owns that address: ``PushEndpoint`` accepts only a platform endpoint ARN,
``arn:<partition>:sns:<region>:<account>:endpoint/<platform>/<application>/<endpoint id>``, of a platform the
sender builds a payload for, and keeps it as written (ARNs are case-sensitive). The recipient quota counts the ARN:
one endpoint is one app on one device.

Only this stack's account and region: an endpoint elsewhere is refused at ingest (a 422 on
``customer.push_endpoint``) and again by the sender before ``Publish``, which the sender's role would deny anyway
(its ``sns:Publish`` names this account's and region's endpoints only).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated

from pydantic import AfterValidator, Field

from notifications.env import EnvModel
from notifications.registry import AddressKind, AddressRefusedError, ChannelSpec

# The platforms the sender writes a payload for (sender.PLATFORMS' keys): FCM's and APNs' production and sandbox
# environments. A platform application's name is 1-256 ASCII letters, digits, "_", "-" and "."
# (https://docs.aws.amazon.com/sns/latest/api/API_CreatePlatformApplication.html); the endpoint id is the UUID SNS
# gives it. ASCII only, checked with fullmatch; also the pattern of the API document.
_ENDPOINT_ARN = re.compile(
    r"^arn:aws(?:-cn|-us-gov)?:sns:[a-z]{2}(?:-[a-z]+)+-[0-9]:[0-9]{12}:endpoint/"
    r"(?:GCM|APNS|APNS_SANDBOX)/[A-Za-z0-9_.-]{1,256}/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)


def _endpoint(value: str) -> str:
    if not _ENDPOINT_ARN.fullmatch(value):
        raise ValueError(
            "must be an Amazon SNS platform endpoint ARN of a GCM, APNS or APNS_SANDBOX application, such as "
            "'arn:aws:sns:eu-central-1:123456789012:endpoint/GCM/shop-app/5e3e9847-3183-3f18-a7e8-671c3a57d4b3'"
        )
    return value


def platform_of(endpoint_arn: str) -> str:
    """The push platform of a (valid) endpoint ARN: ``GCM``, ``APNS`` or ``APNS_SANDBOX``."""
    return endpoint_arn.split(":", 5)[5].split("/")[1]


# An SNS platform endpoint ARN, as written.
PushEndpoint = Annotated[
    str,
    Field(strict=True, json_schema_extra={"pattern": _ENDPOINT_ARN.pattern, "maxLength": 400}),
    AfterValidator(_endpoint),
]


class PushSettings(EnvModel):
    # How long the push services keep trying to reach a device that is off or offline before they drop the
    # message: a purchase confirmation a day late is still worth showing, a week late it is noise. SNS passes it
    # to each platform (AWS.SNS.MOBILE.<platform>.TTL): https://docs.aws.amazon.com/sns/latest/dg/sns-ttl.html
    # (at most FCM's limit of 28 days).
    push_ttl_seconds: int = Field(default=86_400, ge=0, le=2_419_200)
    # This stack's account (template: ACCOUNT_ID, AWS::AccountId) and region (Lambda sets AWS_REGION): the only
    # ones whose endpoints it publishes to.
    account_id: str | None = Field(default=None, pattern=r"^[0-9]{12}$")
    aws_region: str | None = None


@cache
def push_settings() -> PushSettings:
    """The push settings of this execution environment (ingest reads them to check endpoints)."""
    return PushSettings.from_env()


def foreign_endpoint(endpoint_arn: str, settings: PushSettings) -> str | None:
    """Why ``endpoint_arn`` (a valid endpoint ARN) is not this stack's to publish to, or None when it is."""
    _, _, _, region, account = endpoint_arn.split(":", 5)[:5]
    if settings.aws_region is not None and region != settings.aws_region:
        return "is a platform endpoint of another region"
    if settings.account_id is not None and account != settings.account_id:
        return "is a platform endpoint of another account"
    return None


def check_endpoint(endpoint_arn: str) -> None:
    """``AddressRefusedError`` unless ``endpoint_arn`` is an endpoint of this stack's account and region."""
    reason = foreign_endpoint(endpoint_arn, push_settings())
    if reason is not None:
        raise AddressRefusedError(reason)


def _same_endpoint(endpoint_arn: str) -> str:
    return endpoint_arn  # an ARN is case-sensitive: only the same string is the same endpoint


PUSH_ENDPOINT = AddressKind(
    field="push_endpoint",
    annotation=PushEndpoint,
    per_hour=10,
    # The local stack's first demo device (devstack.aws_resources.create_push_endpoints: moto seeded, so it is the
    # same on every start), so that the sample event reaches an endpoint that exists there.
    example="arn:aws:sns:us-east-1:123456789012:endpoint/GCM/shop-app/47eaa099-2cb6-416d-86dc-283cf0480ff9",
    quota_key=_same_endpoint,
)

CHANNEL = ChannelSpec(settings=PushSettings, address=PUSH_ENDPOINT, check_address=check_endpoint)
