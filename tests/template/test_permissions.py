"""What each function may do, as docs/security.md shows it and as the local stack enforces it."""

from __future__ import annotations

from devstack import permissions
from devstack.intrinsics import NO_VALUE, Physical, Resolver
from tests.support import ROOT


def test_the_security_docs_table_is_the_template_s():
    # Given the table of every function's permissions generated from the translated template
    generated = permissions.table()
    # Then docs/security.md shows exactly it (regenerate: python -m devstack.permissions table)
    docs = (ROOT / "docs" / "security.md").read_text()
    start, end = docs.index(permissions.TABLE_BEGIN), docs.index(permissions.TABLE_END) + len(permissions.TABLE_END)
    assert docs[start:end] == generated


def test_every_statement_written_in_the_template_has_a_sid():
    # Given every policy statement template.yaml writes (the least-privilege check names statements by Sid)
    roles = permissions.template_roles()
    # Then each has a Sid
    assert [(f, s.source) for f, role in roles.items() for s in role.template_statements if not s.sid] == []


def test_the_resolver_evaluates_the_intrinsics_the_template_uses():
    # Given the template's topic ARN construction and a condition (CloudFormation intrinsic function reference)
    template = {
        "Parameters": {"ClusterArn": {"Type": "String"}, "Kind": {"Type": "String", "Default": "MSK"}},
        "Conditions": {
            "IsMsk": {"Fn::Equals": [{"Ref": "Kind"}, "MSK"]},
            "NotMsk": {"Fn::Not": [{"Condition": "IsMsk"}]},
        },
        "Resources": {"Table": {"Type": "AWS::DynamoDB::Table"}},
    }
    resolver = Resolver(
        template,
        {"ClusterArn": "arn:aws:kafka:r:1:cluster/c/u"},
        Physical(refs={"Table": "t"}, attributes={("Table", "Arn"): "arn:aws:dynamodb:r:1:table/t"}),
    )
    topic = {
        "Fn::Sub": [
            "${Topics}/notifications.email",
            {"Topics": {"Fn::Join": [":topic/", {"Fn::Split": [":cluster/", {"Ref": "ClusterArn"}]}]}},
        ]
    }
    # Then each evaluates as CloudFormation would
    assert resolver.resolve(topic) == "arn:aws:kafka:r:1:topic/c/u/notifications.email"
    assert resolver.resolve({"Fn::If": ["IsMsk", {"Fn::GetAtt": ["Table", "Arn"]}, {"Ref": "AWS::NoValue"}]}) == (
        "arn:aws:dynamodb:r:1:table/t"
    )
    assert resolver.resolve({"Fn::If": ["NotMsk", "x", {"Ref": "AWS::NoValue"}]}) is NO_VALUE
    assert resolver.resolve([{"Fn::If": ["NotMsk", "x", {"Ref": "AWS::NoValue"}]}, "y"]) == ["y"]
    assert resolver.resolve({"Fn::Sub": "${Table}-${!Literal}"}) == "t-${Literal}"


def test_a_statement_is_explained_only_by_a_comment_beside_or_just_above_it():
    text = "\n".join(
        [
            "          # Used by Lambda's pollers, not the code.",
            "          - !If",
            "            - IsMsk",
            "            - Sid: Pollers",
            "              Effect: Allow",
            "          - Sid: Commented # used when a record is deferred",
            "          # A description that says nothing of when.",
            "          - Sid: Described",
            "          - Sid: Bare",
        ]
    )
    assert permissions.explained(text, "Pollers")
    assert permissions.explained(text, "Commented")
    assert not permissions.explained(text, "Bare")
    assert not permissions.explained(text, "Described")
    assert not permissions.explained(text, "Missing")


def test_each_channels_destination_secrets_are_read_only_by_its_own_sender_and_described_only_by_ingest():
    # Given every function's role, and a caller's Slack and webhook destination secrets (full ARNs, with the random
    # suffix Secrets Manager adds: https://docs.aws.amazon.com/secretsmanager/latest/userguide/troubleshoot.html)
    from devstack.iam.policy import evaluate

    roles = permissions.template_roles()
    arn = "arn:aws:secretsmanager:<region>:<account>:secret:<DestinationSecretPrefix>/{}/c-abcdefghijklmnopqrstuvwxyz-AbCdEf"
    actions = ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret")

    # When each action on each channel's secret is evaluated for every function
    allowed = {
        (function, action, channel)
        for function, role in roles.items()
        for action in actions
        for channel in ("slack", "webhook", "email")
        if evaluate(role.statements, action, arn.format(channel)).allowed
    }

    # Then only the channel's sender reads its secrets, and ingest only describes them (never reads a value)
    assert allowed == {
        ("SlackSenderFunction", "secretsmanager:GetSecretValue", "slack"),
        ("WebhookSenderFunction", "secretsmanager:GetSecretValue", "webhook"),
        ("IngestFunction", "secretsmanager:DescribeSecret", "slack"),
        ("IngestFunction", "secretsmanager:DescribeSecret", "webhook"),
    }
