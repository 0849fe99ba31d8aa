"""The AWS resources the functions expect, created in moto (tests) or the local stack (tables in its DynamoDB
server, the rest in the moto server).

Names and shapes match template.yaml: the idempotency table (key ``id``, TTL ``expiration``), the status table
(``notification_id`` + ``channel``, TTL ``expires_at``, keys-only index on ``provider_message_id``), the
suppression table (key ``address_hash``), the quota table (key ``counter``, TTL ``expires_at``), a
verified SES identity and, for each local shop (``LOCAL_SHOPS``), its own Slack and webhook destination secrets
(``notifications.destinations``: ``<prefix>/<channel>/<caller id>``; the webhook's signing keys are Standard
Webhooks secrets, ``whsec_`` + base64 of at least 32 bytes). The receivers tell the shops apart by path:
``/slack/<shop>`` and ``/webhook/<shop>``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from devstack.apigw import ACCOUNT_ID, LOCAL_CALLER, caller_arn
from notifications.callers import Caller
from notifications.destinations import secret_name
from notifications.message_index import INDEX_NAME as MESSAGE_INDEX
from notifications.registry import address_kinds
from notifications.retention import STATUS_EXPIRES_ATTRIBUTE

IDEMPOTENCY_TABLE = "notifications-idempotency"
STATUS_TABLE = "notifications-status"
QUOTA_TABLE = "notifications-quotas"
SUPPRESSION_TABLE = "notifications-suppressions"
# Each table by its logical id in template.yaml.
TABLES = {
    "IdempotencyTable": IDEMPOTENCY_TABLE,
    "StatusTable": STATUS_TABLE,
    "QuotaTable": QUOTA_TABLE,
    "SuppressionTable": SUPPRESSION_TABLE,
}
# Locally the quotas are high, so that demos and load runs are not refused; tests of the quotas lower them.
LOCAL_QUOTAS = {
    "QUOTA_CALLER_PER_SECOND": "100000",
    "QUOTA_CALLER_PER_DAY": "100000000",
    # every customer address kind's recipient quota
    **{f"QUOTA_{field.upper()}_PER_HOUR": "1000000" for field in address_kinds()},
}
SENDER_ADDRESS = "orders@shop.example"
# The configuration set the email sender names (template.yaml's EmailConfigurationSet); the local SES publishes the
# events of messages sent with it (devstack.providers).
CONFIGURATION_SET = "notifications"
# Where the callers' destination secrets live (template.yaml's DestinationSecretPrefix in AWS).
DESTINATION_PREFIX = "notifications/destinations"
DESTINATION_CHANNELS = ("slack", "webhook")
# The local shops, each with its own webhook signing key: two callers of the local API (``X-Devstack-Caller`` names
# them; the first is its default caller), and the caller of the samples in events/ (an assumed role, the same caller
# whatever its session). Local only, hence fixed: a deployed secret holds random bytes (docs/security.md).
LOCAL_SHOPS = {
    LOCAL_CALLER: "whsec_bG9jYWwtc3RhY2sgd2ViaG9vayBzaWduaW5nIGtleSE=",
    "other-shop": "whsec_b3RoZXIgc2hvcCdzIG93biB3ZWJob29rIHNpZ25pbmcga2V5IQ==",
    "sample-shop": "whsec_c2FtcGxlIGV2ZW50cycgc2hvcCwgaXRzIG93biBzaWduaW5nIGtleQ==",
}
# A shop's principal: an IAM user of the local account, but for the samples' assumed role.
SAMPLE_SHOP_ARN = "arn:aws:sts::123456789012:assumed-role/shop-backend/i-0a1b2c3d4e5f60718"
# Where the local stack may send SMS (the template's SmsAllowedCountries parameter in AWS).
SMS_ALLOWED_COUNTRIES = "DE,AT,CH,US"
# The shop's app as SNS platform applications, one per push platform, and the demo customers' devices registered
# with them (https://docs.aws.amazon.com/sns/latest/dg/mobile-platform-endpoint.html): (platform, device token).
PUSH_APPLICATION = "shop-app"
PUSH_DEVICES = (("GCM", "local-android-device-0"), ("APNS_SANDBOX", "local-ios-device-1"), ("GCM", "local-android-2"))
# SNS gives each endpoint a random id; moto draws it from its seedable generator (``/moto-api/seed``), seeded before
# each endpoint with its position here plus this base, so the endpoints' ARNs are the same on every start and the
# push sample event (events/sender_push_msk.json) names the first one.
PUSH_SEED = 20261121


@dataclass(frozen=True)
class Endpoints:
    """Where the receivers listen: each shop's Slack and webhook destination is a path of its own below these."""

    slack_base_url: str = "http://127.0.0.1:3001/slack"
    webhook_base_url: str = "http://127.0.0.1:3001/webhook"

    def slack_url(self, shop: str = LOCAL_CALLER) -> str:
        return f"{self.slack_base_url}/{shop}"

    def webhook_url(self, shop: str = LOCAL_CALLER) -> str:
        return f"{self.webhook_base_url}/{shop}"

    @staticmethod
    def signing_key(shop: str = LOCAL_CALLER) -> str:
        return LOCAL_SHOPS[shop]

    def destinations(self, shop: str, signing_key: str | None = None) -> dict[str, dict[str, Any]]:
        """The content of ``shop``'s destination secret per channel."""
        key = signing_key or LOCAL_SHOPS[shop]
        return {
            "slack": {"url": self.slack_url(shop)},
            "webhook": {"url": self.webhook_url(shop), "signing_keys": [key]},
        }


def shop_caller_id(shop: str) -> str:
    """The caller id of the local shop ``shop`` (or of the local API's caller of that name)."""
    return Caller.iam(SAMPLE_SHOP_ARN if shop == "sample-shop" else caller_arn(shop)).id


def destination_secret(channel: str, shop: str = LOCAL_CALLER) -> str:
    """The name of ``shop``'s destination secret for ``channel``."""
    return secret_name(DESTINATION_PREFIX, channel, shop_caller_id(shop))


def put_destinations(
    secrets: Any, shop: str, endpoints: Endpoints = Endpoints(), signing_key: str | None = None
) -> None:
    """``shop``'s Slack and webhook destination secrets (created, or given a new value)."""
    for channel, value in endpoints.destinations(shop, signing_key).items():
        put_secret(secrets, destination_secret(channel, shop), json.dumps(value))


def create_all(session: Any, endpoints: Endpoints = Endpoints()) -> None:
    """Create every resource; already existing ones are left as they are."""
    create_tables(session.client("dynamodb"))
    session.client("sesv2").create_email_identity(EmailIdentity=SENDER_ADDRESS)
    secrets = session.client("secretsmanager")
    for shop in LOCAL_SHOPS:
        put_destinations(secrets, shop, endpoints)


def create_push_endpoints(sns: Any, seed: Callable[[int], None]) -> list[str]:
    """The shop app's platform applications and the demo devices' endpoints (``PUSH_DEVICES``, in that order), in
    moto; ``seed(n)`` seeds moto's generator. Answers the endpoint ARNs; existing ones are kept (SNS answers the
    ARN of an endpoint whose token is registered already)."""
    applications: dict[str, str] = {}
    arns = []
    for position, (platform, token) in enumerate(PUSH_DEVICES):
        if platform not in applications:
            # A platform application names the push service's credentials; moto does not check them.
            attributes = {"PlatformCredential": "local-credential"}
            if platform.startswith("APNS"):
                attributes["PlatformPrincipal"] = "local-certificate"
            applications[platform] = sns.create_platform_application(
                Name=PUSH_APPLICATION, Platform=platform, Attributes=attributes
            )["PlatformApplicationArn"]
        seed(PUSH_SEED + position)
        arns.append(
            sns.create_platform_endpoint(PlatformApplicationArn=applications[platform], Token=token)["EndpointArn"]
        )
    return arns


@contextmanager
def moto_server(host: str = "127.0.0.1") -> Iterator[str]:
    """moto's server in this process on a free port of ``host``, without a log line per request: its endpoint URL."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    try:
        bound_host, port = server.get_host_and_port()
        yield f"http://{bound_host}:{port}"
    finally:
        server.stop()


def seed_moto_server(aws_endpoint: str) -> Callable[[int], None]:
    """``seed`` for :func:`create_push_endpoints` on a moto server (its ``POST /moto-api/seed?a=<n>``)."""
    import urllib.request  # noqa: PLC0415

    def seed(value: int) -> None:
        request = urllib.request.Request(f"{aws_endpoint}/moto-api/seed?a={value}", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - the local moto server
            pass

    return seed


def seed_moto_in_process(value: int) -> None:
    """``seed`` for :func:`create_push_endpoints` on moto in this process (``mock_aws``)."""
    from moto.moto_api._internal import mock_random  # noqa: PLC0415

    mock_random.seed(value)


def put_secret(secrets: Any, name: str, value: str) -> str:
    """Create the secret ``name`` holding ``value``, or give an existing one that value; answers its ARN."""
    try:
        return str(secrets.create_secret(Name=name, SecretString=value)["ARN"])
    except secrets.exceptions.ResourceExistsException:
        return str(secrets.put_secret_value(SecretId=name, SecretString=value)["ARN"])


def create_tables(ddb: Any) -> None:
    """The tables (a DynamoDB client of moto or of the local DynamoDB server); existing ones are kept."""
    existing = set(ddb.list_tables()["TableNames"])
    # name, key attributes, TTL attribute, the key of a keys-only global secondary index (MESSAGE_INDEX)
    tables: list[tuple[str, tuple[str, ...], str | None, str | None]] = [
        (IDEMPOTENCY_TABLE, ("id",), "expiration", None),
        (QUOTA_TABLE, ("counter",), "expires_at", None),
        (STATUS_TABLE, ("notification_id", "channel"), STATUS_EXPIRES_ATTRIBUTE, "provider_message_id"),
        (SUPPRESSION_TABLE, ("address_hash",), None, None),
    ]
    for name, key, ttl, index_key in tables:
        if name in existing:
            continue
        index = {
            "IndexName": MESSAGE_INDEX,
            "KeySchema": _key_schema(index_key),
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
        ddb.create_table(
            TableName=name,
            KeySchema=_key_schema(*key),
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in (*key, index_key) if a],
            BillingMode="PAY_PER_REQUEST",
            **({"GlobalSecondaryIndexes": [index]} if index_key else {}),
        )
        if ttl:
            _enable_ttl(ddb, name, ttl)


def _key_schema(*attributes: str | None) -> list[dict[str, str | None]]:
    return [{"AttributeName": name, "KeyType": kind} for name, kind in zip(attributes, ("HASH", "RANGE"), strict=False)]


def _enable_ttl(ddb: Any, table: str, attribute: str) -> None:
    """TTL as in template.yaml; the local DynamoDB (dynalite) has no UpdateTimeToLive and keeps expired items."""
    try:
        ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute})
    except ddb.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] != "UnknownOperationException":
            raise


def function_environment(bootstrap: str) -> dict[str, str]:
    """The environment every function gets locally (template.yaml sets the same names in AWS)."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "STATUS_TABLE_NAME": STATUS_TABLE,
        "IDEMPOTENCY_TABLE_NAME": IDEMPOTENCY_TABLE,
        "QUOTA_TABLE_NAME": QUOTA_TABLE,
        "SUPPRESSION_TABLE_NAME": SUPPRESSION_TABLE,
        **LOCAL_QUOTAS,
        "EMAIL_FROM_ADDRESS": SENDER_ADDRESS,
        "SES_CONFIGURATION_SET": CONFIGURATION_SET,
        "DESTINATION_SECRET_PREFIX": DESTINATION_PREFIX,
        "SMS_ALLOWED_COUNTRIES": SMS_ALLOWED_COUNTRIES,
        "ACCOUNT_ID": ACCOUNT_ID,
        # Lets the HTTP channels deliver to the local receivers on 127.0.0.1 (loopback and private targets).
        "ENVIRONMENT": "dev",
        "POWERTOOLS_SERVICE_NAME": "purchase-notifications",
        "POWERTOOLS_METRICS_NAMESPACE": "PurchaseNotifications",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
