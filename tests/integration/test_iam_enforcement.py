"""What the local stack enforces, taken from template.yaml: a function's AWS calls are authorized against its role
as SAM translates it (devstack.iam), and a grant missing from the template fails the call as AWS would.

The roles are read from the template (or from a copy with one grant removed) with moto's resources as ARNs; the
calls are the product's own adapters through ordinary boto3 clients on moto, with the guard each local function
process installs (``devstack.permissions.install_from_env``) attached to the client.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from devstack import aws_resources, kafka_acls, permissions
from devstack.iam.guard import Guard
from devstack.iam.policy import evaluate
from devstack.iam.requests import Account
from devstack.iam.roles import Role, roles
from devstack.template_config import DEFAULT_TEMPLATE
from notifications.suppression import DynamoSuppressionList
from tests.support import template_copy

pytestmark = pytest.mark.integration

SECRET_ARNS = {
    name: f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf"
    for name in (aws_resources.destination_secret(channel) for channel in aws_resources.DESTINATION_CHANNELS)
}
SUPPRESSION_GRANT = "Action: [dynamodb:BatchGetItem, dynamodb:GetItem]"


def local_roles(template: Path) -> dict[str, Role]:
    parameters = permissions.local_parameters(
        bootstrap="127.0.0.1:9092",
        sender_address=aws_resources.SENDER_ADDRESS,
        destination_prefix=aws_resources.DESTINATION_PREFIX,
    )
    physical = permissions.local_physical(aws_resources.TABLES, aws_resources.CONFIGURATION_SET, template)
    return roles(physical, parameters, template=template)


def guarded_dynamodb(role: Role) -> object:
    client = boto3.client("dynamodb", region_name="us-east-1")
    account = Account(region="us-east-1", account_id=permissions.ACCOUNT_ID, secret_arns=SECRET_ARNS)
    Guard(
        role.principal_arn, account, lambda a: evaluate(role.statements, a.action, a.resource, a.context).allowed
    ).attach(client)
    return client


@mock_aws
def test_the_email_senders_suppression_read_is_allowed_by_the_template():
    # Given the email sender's role from template.yaml, on moto's tables
    aws_resources.create_tables(boto3.client("dynamodb", region_name="us-east-1"))
    suppression = DynamoSuppressionList(
        aws_resources.SUPPRESSION_TABLE, guarded_dynamodb(local_roles(DEFAULT_TEMPLATE)["EmailSenderFunction"])
    )

    # When it reads the suppression list for a batch (one BatchGetItem)
    # Then the read is allowed and answers
    assert suppression.suppressed({"ada@example.com", "grace@example.com"}) == set()


@mock_aws
def test_without_batch_get_item_in_the_template_the_suppression_read_is_access_denied(tmp_path):
    # Given a copy of template.yaml whose email sender may only GetItem on the suppression table
    aws_resources.create_tables(boto3.client("dynamodb", region_name="us-east-1"))
    copy = template_copy(tmp_path, SUPPRESSION_GRANT, "Action: dynamodb:GetItem")
    role = local_roles(copy)["EmailSenderFunction"]
    suppression = DynamoSuppressionList(aws_resources.SUPPRESSION_TABLE, guarded_dynamodb(role))

    # When the sender reads the list for a batch
    with pytest.raises(ClientError) as denied:
        suppression.suppressed({"ada@example.com"})

    # Then DynamoDB's answer is AWS's denial, naming the action, the table and the role's session
    error = denied.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "dynamodb:BatchGetItem" in error["Message"]
    assert f"table/{aws_resources.SUPPRESSION_TABLE}" in error["Message"]
    assert "assumed-role/EmailSenderFunctionRole/EmailSenderFunction" in error["Message"]
    # And the one-read-per-email fallback is still allowed
    assert suppression.is_suppressed("ada@example.com") is False


def test_every_sender_may_put_a_deferred_record_back_on_its_own_topic():
    # Given each sender's Kafka ACLs as the local broker gets them from its kafka-cluster statements
    for function, role in local_roles(DEFAULT_TEMPLATE).items():
        channel = function.removesuffix("SenderFunction").lower()
        if not function.endswith("SenderFunction"):
            continue
        acls = kafka_acls.bindings(f"User:{function}", role.statements, permissions.CLUSTER_ARN)
        # Then it may read and write its channel's topic (a deferral republishes there) and write the DLQ
        granted = {(b.operation, b.name) for b in acls if b.resource_type == "TOPIC" and b.allow}
        assert {("READ", f"notifications.{channel}"), ("WRITE", f"notifications.{channel}")} <= granted
        assert ("WRITE", "notifications.dlq") in granted
        # And no other topic
        assert {name for _, name in granted} == {f"notifications.{channel}", "notifications.dlq"}


def test_each_roles_kafka_actions_come_with_the_actions_msk_requires():
    # Given MSK's "Required actions" for each kafka-cluster action (Kafka implies some of them, MSK does not)
    # Then every role of the template has them
    missing = {
        function: problems
        for function, role in local_roles(DEFAULT_TEMPLATE).items()
        if (problems := kafka_acls.missing_required(role.statements, permissions.CLUSTER_ARN))
    }
    assert missing == {}
