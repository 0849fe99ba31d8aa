"""Kafka ACLs from kafka-cluster statements, after the MSK developer guide's "Semantics of IAM authorization policy
actions and resources" (https://docs.aws.amazon.com/msk/latest/developerguide/kafka-actions.html), and the broker's
authorizations read back as IAM actions."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.iam.policy import statements
from devstack.kafka_acls import AclError, Binding, bindings, can_connect, missing_required, observed

CLUSTER = "arn:aws:kafka:us-east-1:123456789012:cluster/local/uuid-1"
TOPICS = "arn:aws:kafka:us-east-1:123456789012:topic/local/uuid-1"
GROUPS = "arn:aws:kafka:us-east-1:123456789012:group/local/uuid-1"


def policy(*statement: dict[str, object]) -> list:
    return statements({"Version": "2012-10-17", "Statement": list(statement)}, "test")


def test_each_action_is_its_documented_acl_on_its_resource():
    # Given a consumer's and producer's statements
    role = policy(
        {"Sid": "C", "Effect": "Allow", "Action": ["kafka-cluster:Connect"], "Resource": CLUSTER},
        {
            "Sid": "T",
            "Effect": "Allow",
            "Action": ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData", "kafka-cluster:WriteData"],
            "Resource": f"{TOPICS}/orders",
        },
        {"Sid": "G", "Effect": "Allow", "Action": "kafka-cluster:AlterGroup", "Resource": f"{GROUPS}/app"},
        {"Sid": "I", "Effect": "Allow", "Action": "kafka-cluster:WriteDataIdempotently", "Resource": CLUSTER},
        {"Sid": "P", "Effect": "Deny", "Action": "kafka-cluster:WriteData", "Resource": f"{TOPICS}/orders.*"},
    )
    # Then: DescribeTopic = DESCRIBE, ReadData = READ, WriteData = WRITE on the topic; AlterGroup = READ on the group;
    # WriteDataIdempotently = IDEMPOTENT_WRITE on the cluster; a trailing * a PREFIXED pattern; Deny a DENY ACL
    assert set(bindings("User:F", role, CLUSTER)) == {
        Binding("User:F", "TOPIC", "orders", "LITERAL", "DESCRIBE"),
        Binding("User:F", "TOPIC", "orders", "LITERAL", "READ"),
        Binding("User:F", "TOPIC", "orders", "LITERAL", "WRITE"),
        Binding("User:F", "GROUP", "app", "LITERAL", "READ"),
        Binding("User:F", "CLUSTER", "kafka-cluster", "LITERAL", "IDEMPOTENT_WRITE"),
        Binding("User:F", "TOPIC", "orders.", "PREFIXED", "WRITE", allow=False),
    }
    assert can_connect(role, CLUSTER)
    # And MSK's required actions are checked: WriteDataIdempotently, ReadData and AlterGroup need others
    assert missing_required(role, CLUSTER) == ["kafka-cluster:AlterGroup needs kafka-cluster:DescribeGroup"]


def test_another_clusters_resources_and_a_wildcard_inside_a_name():
    # Given statements on another cluster and with a wildcard the ACL patterns cannot express
    other = "arn:aws:kafka:us-east-1:123456789012:topic/other/uuid-2/orders"
    assert (
        bindings("User:F", policy({"Effect": "Allow", "Action": "kafka-cluster:*", "Resource": other}), CLUSTER) == []
    )
    assert not can_connect(policy({"Effect": "Allow", "Action": "kafka-cluster:*", "Resource": other}), CLUSTER)
    with pytest.raises(AclError):
        bindings(
            "User:F",
            policy({"Effect": "Allow", "Action": "kafka-cluster:ReadData", "Resource": f"{TOPICS}/a*b"}),
            CLUSTER,
        )


def test_the_authorizer_log_reads_back_as_iam_actions(tmp_path: Path):
    # Given StandardAuthorizer's audit lines (allowed at DEBUG, denied at INFO)
    log = tmp_path / "authorizer.log"
    log.write_text(
        "[2026-12-06 14:29:46,416] DEBUG Principal = User:Fn is Allowed operation = READ from host = 127.0.0.1 on "
        "resource = Group:LITERAL:app for request = JoinGroup with resourceRefCount = 1 based on rule MatchingAcl\n"
        "[2026-12-06 14:29:46,521] INFO Principal = User:Fn is Denied operation = WRITE from host = 127.0.0.1 on "
        "resource = Topic:LITERAL:orders for request = Produce with resourceRefCount = 1 based on rule DefaultDeny\n"
    )
    # Then each is the IAM action on the resource's ARN, and the principal connected
    assert {(o.action, o.resource, o.allowed) for o in observed([log], CLUSTER)} == {
        ("kafka-cluster:AlterGroup", f"{GROUPS}/app", True),
        ("kafka-cluster:WriteData", f"{TOPICS}/orders", False),
        ("kafka-cluster:Connect", CLUSTER, True),
    }
