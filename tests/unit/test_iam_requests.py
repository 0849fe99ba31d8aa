"""IAM for the local stack's function processes (``devstack.iam.requests``, ``devstack.iam.guard``).

What AWS authorizes for each call (action, resource ARN, condition keys) and how a denied call fails: through real
boto3 clients, botocore's own parser and retry handler. No sockets: an allowed call is answered by a canned
``before-send`` handler registered after the guard's, or by moto's in-process mock.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from devstack.iam.guard import Guard
from devstack.iam.requests import Account, Authorization, UnknownOperation, access_denied_message, authorizations

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
PRINCIPAL = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/EmailSenderRole/EmailSenderFunction"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:slack-webhook-AbCdEf"
ACCOUNT = Account(REGION, ACCOUNT_ID, secret_arns={"slack-webhook": SECRET_ARN})


def table(name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"


def auth(service: str, operation: str, account: Account = ACCOUNT, **params: Any) -> list[Authorization]:
    return authorizations(service, operation, params, account)


# --- The mapping ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "DescribeTable"])
def test_item_and_table_operations_are_authorized_as_themselves_on_the_table(operation):
    # Service Authorization Reference, DynamoDB
    # (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html): each action
    # on the table resource type arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}.
    # Given a call naming its table by name
    # When it is mapped
    found = auth("dynamodb", operation, TableName="notification-status")
    # Then it is one authorization of the action of its own name on the table ARN
    assert found == [Authorization(f"dynamodb:{operation}", table("notification-status"))]


def test_a_table_named_by_its_arn_is_evaluated_on_that_arn():
    # DynamoDB API Reference, GetItem: TableName "You can also provide the Amazon Resource Name (ARN) of the table".
    # Given a table ARN of another account
    other = "arn:aws:dynamodb:eu-west-1:210987654321:table/shared"
    # When GetItem names it
    # Then that ARN is evaluated
    assert auth("dynamodb", "GetItem", TableName=other) == [Authorization("dynamodb:GetItem", other)]


def test_return_values_and_consumed_capacity_are_condition_keys():
    # Service Authorization Reference, DynamoDB: UpdateItem has the condition keys dynamodb:ReturnValues and
    # dynamodb:ReturnConsumedCapacity.
    # Given an update asking for the old item and the consumed capacity
    # When it is mapped
    [found] = auth("dynamodb", "UpdateItem", TableName="t", ReturnValues="ALL_OLD", ReturnConsumedCapacity="TOTAL")
    # Then both are in the context
    assert found.context == {"dynamodb:ReturnValues": "ALL_OLD", "dynamodb:ReturnConsumedCapacity": "TOTAL"}


@pytest.mark.parametrize("operation", ["Query", "Scan"])
def test_query_and_scan_are_evaluated_on_the_index_when_one_is_named_else_on_the_table(operation):
    # Service Authorization Reference, DynamoDB: Query and Scan have the resource types table and index
    # (arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}/index/${IndexName}).
    # Given the same read without and with an index
    # When each is mapped
    on_table = auth("dynamodb", operation, TableName="notification-status")
    on_index = auth("dynamodb", operation, TableName="notification-status", IndexName="by-recipient")
    # Then the first is on the table, the second on the index only
    assert on_table == [Authorization(f"dynamodb:{operation}", table("notification-status"))]
    assert on_index == [Authorization(f"dynamodb:{operation}", table("notification-status") + "/index/by-recipient")]


def test_query_select_is_a_condition_key():
    # Service Authorization Reference, DynamoDB: Query has the condition key dynamodb:Select.
    [found] = auth("dynamodb", "Query", TableName="t", Select="COUNT")
    assert found.context == {"dynamodb:Select": "COUNT"}


def test_batch_get_item_is_one_authorization_per_table():
    # Service Authorization Reference, DynamoDB: BatchGetItem on the table resource type; a batch over two tables
    # needs the action on both.
    # Given a BatchGetItem over two tables
    request = {"suppression": {"Keys": [{"address": {"S": "a@x"}}]}, "status": {"Keys": [{"pk": {"S": "1"}}]}}
    # When it is mapped
    found = auth("dynamodb", "BatchGetItem", RequestItems=request)
    # Then there is one authorization of dynamodb:BatchGetItem per table
    assert found == [
        Authorization("dynamodb:BatchGetItem", table("suppression")),
        Authorization("dynamodb:BatchGetItem", table("status")),
    ]


def test_batch_write_item_is_one_authorization_per_table():
    # Service Authorization Reference, DynamoDB: BatchWriteItem on the table resource type.
    request: dict[str, Any] = {"a": [{"PutRequest": {"Item": {}}}], "b": [{"DeleteRequest": {"Key": {}}}]}
    found = auth("dynamodb", "BatchWriteItem", RequestItems=request)
    assert [(a.action, a.resource) for a in found] == [
        ("dynamodb:BatchWriteItem", table("a")),
        ("dynamodb:BatchWriteItem", table("b")),
    ]


def test_transact_write_items_authorizes_each_item_as_its_underlying_operation():
    # DynamoDB Developer Guide, "Using IAM with DynamoDB transactions"
    # (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html): Put, Update and
    # Delete are governed by PutItem, UpdateItem and DeleteItem, ConditionCheck by dynamodb:ConditionCheckItem,
    # with dynamodb:EnclosingOperation naming the transaction.
    # Given a transaction of the four kinds of item over three tables
    items = [
        {"Put": {"TableName": "ledger", "Item": {}}},
        {"Update": {"TableName": "status", "Key": {}, "UpdateExpression": "SET a = :a"}},
        {"Delete": {"TableName": "ledger", "Key": {}}},
        {"ConditionCheck": {"TableName": "quota", "Key": {}, "ConditionExpression": "attribute_exists(k)"}},
    ]
    # When it is mapped
    found = auth("dynamodb", "TransactWriteItems", TransactItems=items)
    # Then each item is one authorization of its own action on its own table
    assert [(a.action, a.resource) for a in found] == [
        ("dynamodb:PutItem", table("ledger")),
        ("dynamodb:UpdateItem", table("status")),
        ("dynamodb:DeleteItem", table("ledger")),
        ("dynamodb:ConditionCheckItem", table("quota")),
    ]
    assert all(a.context == {"dynamodb:EnclosingOperation": "TransactWriteItems"} for a in found)


def test_transact_get_items_authorizes_get_item_per_item():
    # DynamoDB Developer Guide, "Using IAM with DynamoDB transactions": Get is governed by GetItem.
    items = [{"Get": {"TableName": "a", "Key": {}}}, {"Get": {"TableName": "b", "Key": {}}}]
    found = auth("dynamodb", "TransactGetItems", TransactItems=items)
    assert [(a.action, a.resource, dict(a.context)) for a in found] == [
        ("dynamodb:GetItem", table("a"), {"dynamodb:EnclosingOperation": "TransactGetItems"}),
        ("dynamodb:GetItem", table("b"), {"dynamodb:EnclosingOperation": "TransactGetItems"}),
    ]


def test_list_tables_has_no_resource():
    # Service Authorization Reference, DynamoDB: ListTables has no resource type ("*").
    assert auth("dynamodb", "ListTables") == [Authorization("dynamodb:ListTables", "*")]


@pytest.mark.parametrize("operation", ["GetSecretValue", "DescribeSecret", "PutSecretValue"])
@pytest.mark.parametrize(
    "secret_id",
    ["slack-webhook", SECRET_ARN, f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:slack-webhook"],
    ids=["name", "arn", "partial-arn"],
)
def test_a_secret_is_evaluated_on_its_full_arn_whether_named_by_name_or_arn(operation, secret_id):
    # Service Authorization Reference, Secrets Manager
    # (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssecretsmanager.html): the secret
    # resource type; Secrets Manager API Reference, GetSecretValue: SecretId is "The ARN or name of the secret".
    # Given a secret the stack knows, named by its name, full ARN or ARN without the random suffix
    # When a call names it
    found = auth("secretsmanager", operation, SecretId=secret_id)
    # Then the secret's full ARN is evaluated
    assert found == [Authorization(f"secretsmanager:{operation}", SECRET_ARN)]


def test_an_unknown_secret_name_is_evaluated_on_an_arn_no_suffixed_policy_matches():
    # Secrets Manager User Guide, "Permissions policy examples": a secret's ARN ends in "-" and six random
    # characters, so a policy naming a real secret's ARN never matches the unsuffixed one.
    [found] = auth("secretsmanager", "GetSecretValue", SecretId="nobody-knows")
    assert found.resource == f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:nobody-knows"


def test_send_email_is_evaluated_on_the_identity_and_the_configuration_set_with_the_bare_from_address():
    # Service Authorization Reference, SES v2
    # (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsimpleemailservicev2.html):
    # ses:SendEmail on identity and configuration-set; SES Developer Guide, "Identity and access management in
    # Amazon SES" (https://docs.aws.amazon.com/ses/latest/dg/control-user-access.html): ses:FromAddress,
    # ses:FromDisplayName and ses:ApiVersion.
    # Given an email from a display-name address through a configuration set
    params = {"FromEmailAddress": '"Shop Orders" <orders@shop.example>', "ConfigurationSetName": "notifications"}
    # When it is mapped
    found = authorizations("sesv2", "SendEmail", params, ACCOUNT)
    # Then both resources are evaluated, each with the bare address, the display name and API version 2
    context = {"ses:FromAddress": "orders@shop.example", "ses:FromDisplayName": "Shop Orders", "ses:ApiVersion": "2"}
    assert found == [
        Authorization("ses:SendEmail", f"arn:aws:ses:{REGION}:{ACCOUNT_ID}:identity/shop.example", context),
        Authorization("ses:SendEmail", f"arn:aws:ses:{REGION}:{ACCOUNT_ID}:configuration-set/notifications", context),
    ]


def test_send_email_without_configuration_set_is_evaluated_on_the_identity_only():
    found = auth("sesv2", "SendEmail", FromEmailAddress="orders@shop.example")
    assert [a.resource for a in found] == [f"arn:aws:ses:{REGION}:{ACCOUNT_ID}:identity/shop.example"]
    assert found[0].context == {"ses:FromAddress": "orders@shop.example", "ses:ApiVersion": "2"}


@pytest.mark.parametrize(
    ("verified", "expected"),
    [
        ({"orders@mail.shop.example", "shop.example"}, "orders@mail.shop.example"),
        ({"shop.example"}, "shop.example"),
        ({"mail.shop.example", "shop.example"}, "mail.shop.example"),
        (set(), "mail.shop.example"),
    ],
    ids=["address-first", "parent-domain", "nearest-domain", "unknown-domain-of-address"],
)
def test_send_email_uses_the_verified_identity_the_from_address_sends_through(verified, expected):
    # SES Developer Guide, "Creating a sending authorization policy"
    # (https://docs.aws.amazon.com/ses/latest/dg/sending-authorization-identity-owner-tasks-policy.html): email
    # address identities take precedence over their domain identities; "Verified identities": a verified domain
    # covers its subdomains.
    # Given the verified identities of the account
    account = Account(REGION, ACCOUNT_ID, ses_identities=frozenset(verified))
    # When an email is sent from an address of a subdomain
    [found] = auth("sesv2", "SendEmail", account, FromEmailAddress="orders@mail.shop.example")
    # Then the most specific verified identity is evaluated
    assert found.resource == f"arn:aws:ses:{REGION}:{ACCOUNT_ID}:identity/{expected}"


def test_send_email_with_an_identity_arn_is_evaluated_on_that_identity():
    # SES API v2 Reference, SendEmail: FromEmailAddressIdentityArn, "used only for sending authorization".
    owner = "arn:aws:ses:us-east-1:210987654321:identity/partner.example"
    [found] = auth("sesv2", "SendEmail", FromEmailAddress="a@partner.example", FromEmailAddressIdentityArn=owner)
    assert found.resource == owner


def test_publish_to_a_topic_is_on_the_topic_and_to_a_phone_number_on_no_resource():
    # Service Authorization Reference, SNS (https://docs.aws.amazon.com/service-authorization/latest/reference/
    # list_amazonsns.html): sns:Publish on the topic resource type; SNS Developer Guide, "Publishing SMS messages":
    # a message to a phone number has no topic, so IAM evaluates "*"; SetSMSAttributes has no resource type.
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:alerts"
    assert auth("sns", "Publish", TopicArn=topic, Message="m") == [Authorization("sns:Publish", topic)]
    assert auth("sns", "Publish", TargetArn=topic, Message="m") == [Authorization("sns:Publish", topic)]
    assert auth("sns", "Publish", PhoneNumber="+4915112345678", Message="m") == [Authorization("sns:Publish", "*")]
    assert auth("sns", "SetSMSAttributes", attributes={}) == [Authorization("sns:SetSMSAttributes", "*")]


def test_naming_the_delivery_status_role_passes_it_to_sns():
    # IAM User Guide, "Grant a user permissions to pass a role to an AWS service": the caller needs iam:PassRole on
    # the role it hands a service, with iam:PassedToService naming that service.
    role = f"arn:aws:iam::{ACCOUNT_ID}:role/SmsDeliveryStatusRole"
    assert auth("sns", "SetSMSAttributes", attributes={"MonthlySpendLimit": "1", "DeliveryStatusIAMRole": role}) == [
        Authorization("sns:SetSMSAttributes", "*"),
        Authorization("iam:PassRole", role, {"iam:PassedToService": "sns.amazonaws.com"}),
    ]


@pytest.mark.parametrize(
    ("queue_url", "expected"),
    [
        (f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT_ID}/jobs", f"arn:aws:sqs:eu-west-1:{ACCOUNT_ID}:jobs"),
        (f"http://localhost:4566/{ACCOUNT_ID}/jobs", f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:jobs"),
    ],
)
def test_send_message_is_on_the_queue_arn_of_the_queue_url(queue_url, expected):
    # Service Authorization Reference, SQS (https://docs.aws.amazon.com/service-authorization/latest/reference/
    # list_amazonsqs.html): sqs:SendMessage on arn:${Partition}:sqs:${Region}:${Account}:${QueueName}.
    assert auth("sqs", "SendMessage", QueueUrl=queue_url, MessageBody="b") == [
        Authorization("sqs:SendMessage", expected)
    ]


@pytest.mark.parametrize(("service", "operation"), [("dynamodb", "ExecuteStatement"), ("kafka", "ListClusters")])
def test_an_operation_not_mapped_is_refused_by_name(service, operation):
    # Given an operation with no mapping
    # When it is mapped
    with pytest.raises(UnknownOperation) as raised:
        authorizations(service, operation, {}, ACCOUNT)
    # Then a LookupError names it
    assert isinstance(raised.value, LookupError)
    assert f"{service}.{operation}" in str(raised.value)


def test_the_denial_message_is_iams():
    # IAM User Guide, "Troubleshoot access denied error messages"
    # (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html).
    on_table = Authorization("dynamodb:GetItem", table("t"))
    assert access_denied_message(PRINCIPAL, on_table) == (
        f"User: {PRINCIPAL} is not authorized to perform: dynamodb:GetItem on resource: {table('t')} "
        "because no identity-based policy allows the dynamodb:GetItem action"
    )
    assert access_denied_message(PRINCIPAL, on_table, explicit=True) == (
        f"User: {PRINCIPAL} is not authorized to perform: dynamodb:GetItem on resource: {table('t')} "
        "with an explicit deny in an identity-based policy"
    )
    # An action without a resource is named without one (the guide's codecommit:ListRepositories example).
    assert access_denied_message(PRINCIPAL, Authorization("dynamodb:ListTables", "*")) == (
        f"User: {PRINCIPAL} is not authorized to perform: dynamodb:ListTables "
        "because no identity-based policy allows the dynamodb:ListTables action"
    )


# --- Through real boto3 clients ------------------------------------------------------------------------------


class Policy:
    """A ``decide`` denying the given actions (optionally on one resource), recording every decision."""

    def __init__(self, *denied: str, resource: str | None = None) -> None:
        self.denied = set(denied)
        self.resource = resource
        self.decided: list[tuple[Authorization, bool]] = []
        self._lock = threading.Lock()

    def decide(self, authorization: Authorization) -> bool:
        return not (authorization.action in self.denied and self.resource in (None, authorization.resource))

    def on_call(self, authorization: Authorization, allowed: bool) -> None:
        with self._lock:
            self.decided.append((authorization, allowed))


class Wire:
    """The network of one client: counts every attempt (``before-send``) and answers it with a canned 200.

    botocore calls every ``before-send`` handler and takes the first response (``Endpoint._do_get_response``): the
    guard's handlers are registered first, so the canned answer is what a call gets only when the guard let it go.
    """

    def __init__(self, client: Any, status: int, headers: dict[str, str], body: bytes) -> None:
        self.attempts = 0
        self._lock = threading.Lock()

        def answer(request: Any, **_: Any) -> AWSResponse:
            with self._lock:
                self.attempts += 1
            return _response(status, headers, body)

        client.meta.events.register("before-send", answer)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def _response(status: int, headers: dict[str, str], body: bytes) -> AWSResponse:
    return AWSResponse("https://aws.example/", status, HTTPHeaders.from_dict(headers), _Raw(body))


JSON_OK = {"Content-Type": "application/x-amz-json-1.0"}
SNS_PUBLISHED = (
    b'<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>m-1</MessageId>'
    b"</PublishResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></PublishResponse>"
)


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> Callable[[Policy], Guard]:
    """Installs a guard for the test only (``create_client`` is restored afterwards)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setattr(botocore.session.Session, "create_client", botocore.session.Session.create_client)

    def install(policy: Policy) -> Guard:
        guard = Guard(PRINCIPAL, ACCOUNT, policy.decide, policy.on_call)
        guard.install()
        return guard

    return install


def client(service: str, config: Config | None = None) -> Any:
    # The product's own configurations (notifications.aws): standard retries, 3 attempts; providers 1 attempt.
    config = config or Config(retries={"mode": "standard", "max_attempts": 3})
    return boto3.session.Session(region_name=REGION).client(service, config=config)  # type: ignore[call-overload]


def test_a_denied_dynamodb_call_raises_access_denied_and_an_allowed_one_goes_on(guard):
    # DynamoDB Developer Guide, "Error handling with DynamoDB": AccessDeniedException, HTTP 400.
    # Given a role that may not PutItem on the status table
    policy = Policy("dynamodb:PutItem")
    guard(policy)
    ddb = client("dynamodb")
    wire = Wire(ddb, 200, JSON_OK, b'{"Item": {"pk": {"S": "from-the-wire"}}}')
    # When the process puts an item, then gets one
    with pytest.raises(ClientError) as raised:
        ddb.put_item(TableName="status", Item={"pk": {"S": "1"}})
    got = ddb.get_item(TableName="status", Key={"pk": {"S": "1"}})
    # Then the put fails as botocore fails on AWS's denial, once, and the get reaches the network
    error = raised.value.response
    assert error["Error"]["Code"] == "AccessDeniedException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["ResponseMetadata"]["RetryAttempts"] == 0
    assert error["Error"]["Message"] == (
        f"User: {PRINCIPAL} is not authorized to perform: dynamodb:PutItem on resource: {table('status')} "
        "because no identity-based policy allows the dynamodb:PutItem action"
    )
    assert wire.attempts == 2  # one for each call: the denial was not retried
    assert got["Item"] == {"pk": {"S": "from-the-wire"}}  # the get went on to the network
    assert policy.decided == [
        (Authorization("dynamodb:PutItem", table("status")), False),
        (Authorization("dynamodb:GetItem", table("status")), True),
    ]


def test_every_table_of_a_batch_is_decided_and_one_denied_denies_the_batch(guard):
    # Given a role that may read the status table but not the suppression table
    policy = Policy("dynamodb:BatchGetItem", resource=table("suppression"))
    guard(policy)
    ddb = client("dynamodb")
    wire = Wire(ddb, 200, JSON_OK, b'{"Responses": {}}')
    # When one BatchGetItem reads both
    request = {"suppression": {"Keys": [{"k": {"S": "a"}}]}, "status": {"Keys": [{"k": {"S": "b"}}]}}
    with pytest.raises(ClientError) as raised:
        ddb.batch_get_item(RequestItems=request)
    # Then both tables were decided and reported, and the call was denied naming the denied table
    assert [(a.resource, allowed) for a, allowed in policy.decided] == [
        (table("suppression"), False),
        (table("status"), True),
    ]
    assert f"on resource: {table('suppression')} " in raised.value.response["Error"]["Message"]
    assert wire.attempts == 1


def test_a_denied_secret_read_raises_access_denied(guard):
    # Secrets Manager API Reference, "Common Errors": AccessDeniedException, HTTP 400.
    # Given a role without secretsmanager:GetSecretValue
    guard(Policy("secretsmanager:GetSecretValue"))
    secrets = client("secretsmanager")
    wire = Wire(secrets, 200, {"Content-Type": "application/x-amz-json-1.1"}, b"{}")
    # When the process reads the secret by name
    with pytest.raises(ClientError) as raised:
        secrets.get_secret_value(SecretId="slack-webhook")
    # Then it gets AWS's denial, naming the secret's ARN
    error = raised.value.response
    assert error["Error"]["Code"] == "AccessDeniedException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert f"on resource: {SECRET_ARN} " in error["Error"]["Message"]
    assert wire.attempts == 1


def test_a_send_email_denied_on_the_configuration_set_only_is_denied(guard):
    # SES API v2 Reference, "Common Errors": AccessDeniedException, HTTP 403 (restJson1: x-amzn-ErrorType).
    # Given a role that may send from the identity but not through the configuration set
    configuration_set = f"arn:aws:ses:{REGION}:{ACCOUNT_ID}:configuration-set/notifications"
    policy = Policy("ses:SendEmail", resource=configuration_set)
    guard(policy)
    ses = client("sesv2", Config(retries={"mode": "standard", "total_max_attempts": 1}))
    wire = Wire(ses, 200, {"Content-Type": "application/json"}, b'{"MessageId": "m-1"}')
    request = {
        "FromEmailAddress": '"Shop" <orders@shop.example>',
        "Destination": {"ToAddresses": ["buyer@example.com"]},
        "Content": {"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}}},
    }
    # When it sends without, then with the configuration set
    assert ses.send_email(**request)["MessageId"] == "m-1"
    with pytest.raises(ClientError) as raised:
        ses.send_email(**request, ConfigurationSetName="notifications")
    # Then the second is denied as SES denies it, after the identity and the configuration set were both decided
    error = raised.value.response
    assert error["Error"]["Code"] == "AccessDeniedException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert f"perform: ses:SendEmail on resource: {configuration_set} " in error["Error"]["Message"]
    assert [allowed for _, allowed in policy.decided] == [True, True, False]
    assert policy.decided[-1][0].context["ses:FromAddress"] == "orders@shop.example"
    assert wire.attempts == 2


def test_a_denied_sms_publish_raises_authorization_error(guard):
    # SNS API Reference, Publish, Errors: "AuthorizationError ... HTTP Status Code: 403".
    # Given a role without sns:Publish
    guard(Policy("sns:Publish"))
    sns = client("sns", Config(retries={"mode": "standard", "total_max_attempts": 1}))
    wire = Wire(sns, 200, {"Content-Type": "text/xml"}, SNS_PUBLISHED)
    # When the SMS sender publishes to a phone number
    with pytest.raises(ClientError) as raised:
        sns.publish(PhoneNumber="+4915112345678", Message="Your order shipped")
    # Then SNS's own error comes back
    error = raised.value.response
    assert error["Error"]["Code"] == "AuthorizationError"
    assert dict(error["Error"])["Type"] == "Sender"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "perform: SNS:Publish because no identity-based policy allows the SNS:Publish action" in str(raised.value)
    assert wire.attempts == 1


def test_a_topic_publish_allowed_goes_on(guard):
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:alerts"
    policy = Policy()
    guard(policy)
    sns = client("sns")
    wire = Wire(sns, 200, {"Content-Type": "text/xml"}, SNS_PUBLISHED)
    assert sns.publish(TopicArn=topic, Message="m")["MessageId"] == "m-1"
    assert policy.decided == [(Authorization("sns:Publish", topic), True)]
    assert wire.attempts == 1


def test_a_denied_sqs_send_raises_access_denied(guard):
    # SQS speaks awsJson1_0 with awsQueryCompatible: botocore reports the query code from x-amzn-query-error.
    guard(Policy("sqs:SendMessage"))
    sqs = client("sqs")
    body = "hello"
    ok = json.dumps({"MessageId": "m-1", "MD5OfMessageBody": hashlib.md5(body.encode()).hexdigest()}).encode()
    wire = Wire(sqs, 200, JSON_OK, ok)
    with pytest.raises(ClientError) as raised:
        sqs.send_message(QueueUrl=f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/jobs", MessageBody=body)
    assert raised.value.response["Error"]["Code"] == "AccessDenied"
    assert wire.attempts == 1


@pytest.mark.parametrize(
    "retries",
    [
        {"mode": "legacy", "max_attempts": 5},
        {"mode": "standard", "max_attempts": 5},
        {"mode": "adaptive", "max_attempts": 5},
        {"mode": "standard", "total_max_attempts": 1},
    ],
    ids=["legacy", "standard", "adaptive", "single-attempt"],
)
@pytest.mark.parametrize("service", ["dynamodb", "sesv2", "sns"])
def test_no_retry_mode_retries_a_denial(guard, retries, service):
    # boto3 guide, "Retries" (https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html): the
    # retried errors are transient, throttling and 5xx ones; an access denial is none of them.
    # Given a client allowed several attempts and a role with nothing allowed
    guard(Policy("dynamodb:GetItem", "ses:SendEmail", "sns:Publish"))
    denied = client(service, Config(retries=retries))
    wire = Wire(denied, 200, {}, b"")
    call: Callable[[], Any] = {
        "dynamodb": lambda: denied.get_item(TableName="t", Key={"k": {"S": "1"}}),
        "sesv2": lambda: denied.send_email(
            FromEmailAddress="a@shop.example",
            Destination={"ToAddresses": ["b@example.com"]},
            Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}}},
        ),
        "sns": lambda: denied.publish(PhoneNumber="+4915112345678", Message="m"),
    }[service]
    # When a call is denied
    with pytest.raises(ClientError) as raised:
        call()
    # Then it was attempted once
    assert wire.attempts == 1
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 0


def test_an_operation_without_mapping_is_denied_and_reported(guard):
    # Given a guard allowing everything it is asked about
    policy = Policy()
    guard(policy)
    ddb = client("dynamodb")
    wire = Wire(ddb, 200, JSON_OK, b"{}")
    # When the process makes a call nobody mapped
    with pytest.raises(ClientError) as raised:
        ddb.execute_statement(Statement="SELECT * FROM t")
    # Then it is denied, and reported as denied
    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"
    assert policy.decided == [(Authorization("dynamodb:ExecuteStatement", "*"), False)]
    assert wire.attempts == 1


def test_allowed_calls_reach_moto_in_process_and_a_denied_one_gets_the_guards_answer(guard):
    with mock_aws():
        # Given moto's in-process mock (a before-send handler answering every request) with a table, made before
        # the guard is installed
        client("dynamodb").create_table(
            TableName="status",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        # And a guarded process that may put and get, not delete
        guard(Policy("dynamodb:DeleteItem"))
        ddb = client("dynamodb")
        # When it puts an item, reads it back and tries to delete it
        ddb.put_item(TableName="status", Item={"pk": {"S": "1"}})
        item = ddb.get_item(TableName="status", Key={"pk": {"S": "1"}}).get("Item")
        with pytest.raises(ClientError) as raised:
            ddb.delete_item(TableName="status", Key={"pk": {"S": "1"}})
    # Then moto answered the allowed calls and the guard's denial came back for the other one (botocore still runs
    # moto's handler on it and drops its answer: see devstack.iam.guard on in-process before-send handlers)
    assert item == {"pk": {"S": "1"}}
    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"


def test_installing_twice_guards_each_call_once(guard):
    # Given a guard installed twice
    policy = Policy()
    installed = guard(policy)
    installed.install()
    ddb = client("dynamodb")
    Wire(ddb, 200, JSON_OK, b"{}")
    # When one call is made
    ddb.describe_table(TableName="status")
    # Then it was decided once
    assert policy.decided == [(Authorization("dynamodb:DescribeTable", table("status")), True)]


def test_calls_from_many_threads_are_each_decided_on_their_own(guard):
    # Given one client shared by eight sender threads, PutItem denied on one table only
    policy = Policy("dynamodb:PutItem", resource=table("denied"))
    guard(policy)
    ddb = client("dynamodb")
    wire = Wire(ddb, 200, JSON_OK, b"{}")
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def send(worker: int) -> None:
        for n in range(25):
            name = "denied" if (worker + n) % 2 else "allowed"
            try:
                ddb.put_item(TableName=name, Item={"pk": {"S": f"{worker}-{n}"}})
                outcome = "ok"
            except ClientError as exc:
                outcome = exc.response["Error"]["Code"]
            with lock:
                outcomes.append((name, outcome))

    # When they all put items at once
    threads = [threading.Thread(target=send, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every call got its own table's decision, each reported once, none retried
    assert len(outcomes) == 200
    assert all(outcome == ("ok" if name == "allowed" else "AccessDeniedException") for name, outcome in outcomes)
    assert len(policy.decided) == 200
    assert wire.attempts == 200


def test_the_products_own_clients_are_guarded_unchanged(guard):
    # Given the product's client factories (notifications.aws) in a guarded process denying ses:SendEmail
    from notifications import aws

    aws.client.cache_clear()
    aws.provider_client.cache_clear()
    try:
        guard(Policy("ses:SendEmail"))
        ses = aws.provider_client("sesv2")
        wire = Wire(ses, 200, {"Content-Type": "application/json"}, b'{"MessageId": "m-1"}')
        # When the email sender's call is made through them
        with pytest.raises(ClientError) as raised:
            ses.send_email(
                FromEmailAddress="orders@shop.example",
                Destination={"ToAddresses": ["buyer@example.com"]},
                Content={"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "b"}}}},
                ConfigurationSetName="notifications",
            )
        # Then it fails as on AWS, once, and the product's own mapping of provider errors sees SES's code
        assert raised.value.response["Error"]["Code"] == "AccessDeniedException"
        assert wire.attempts == 1
        mapped = aws.provider_error(raised.value, "SES", permanent=frozenset(), throttled=frozenset())
        assert getattr(mapped, "provider_code", None) == "AccessDeniedException"
    finally:
        aws.client.cache_clear()
        aws.provider_client.cache_clear()
