"""Kafka ACLs from a function's ``kafka-cluster:*`` statements, so the local broker allows what MSK would.

The MSK developer guide gives each IAM action its Kafka ACL operation and resource ("Semantics of IAM authorization
policy actions and resources", https://docs.aws.amazon.com/msk/latest/developerguide/kafka-actions.html: ``ACTIONS``
and ``REQUIRED``); a resource ARN ending in ``*`` is a PREFIXED ACL, a name alone LITERAL. ``kafka-cluster:Connect``
has no ACL: without it the function gets no SCRAM credential, as MSK refuses its connection. Kafka is more lenient
than MSK in two documented ways, which ``missing_required`` closes: it implies DESCRIBE from READ/WRITE/DELETE/ALTER
(``AclEntry``'s implied operations) and IDEMPOTENT_WRITE from WRITE on any topic (KIP-679).

``observed`` reads the broker's authorizer log (``kafka.authorizer.logger``) back as IAM actions on ARNs for the
least-privilege report.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.iam.policy import Statement

__all__ = [
    "ACTIONS",
    "Binding",
    "Observation",
    "apply",
    "bindings",
    "can_connect",
    "missing_required",
    "observed",
]

CLUSTER = "CLUSTER"
TOPIC = "TOPIC"
GROUP = "GROUP"
TRANSACTIONAL_ID = "TRANSACTIONAL_ID"
CLUSTER_RESOURCE_NAME = "kafka-cluster"  # Kafka's name for the one cluster resource

# The page's table: action -> (Kafka ACL operation, resource type), and its "Required actions" column.
ACTIONS: dict[str, tuple[str, str]] = {
    "kafka-cluster:DescribeCluster": ("DESCRIBE", CLUSTER),
    "kafka-cluster:AlterCluster": ("ALTER", CLUSTER),
    "kafka-cluster:DescribeClusterDynamicConfiguration": ("DESCRIBE_CONFIGS", CLUSTER),
    "kafka-cluster:AlterClusterDynamicConfiguration": ("ALTER_CONFIGS", CLUSTER),
    "kafka-cluster:WriteDataIdempotently": ("IDEMPOTENT_WRITE", CLUSTER),
    "kafka-cluster:CreateTopic": ("CREATE", TOPIC),
    "kafka-cluster:DescribeTopic": ("DESCRIBE", TOPIC),
    "kafka-cluster:AlterTopic": ("ALTER", TOPIC),
    "kafka-cluster:DeleteTopic": ("DELETE", TOPIC),
    "kafka-cluster:DescribeTopicDynamicConfiguration": ("DESCRIBE_CONFIGS", TOPIC),
    "kafka-cluster:AlterTopicDynamicConfiguration": ("ALTER_CONFIGS", TOPIC),
    "kafka-cluster:ReadData": ("READ", TOPIC),
    "kafka-cluster:WriteData": ("WRITE", TOPIC),
    "kafka-cluster:DescribeGroup": ("DESCRIBE", GROUP),
    "kafka-cluster:AlterGroup": ("READ", GROUP),
    "kafka-cluster:DeleteGroup": ("DELETE", GROUP),
    "kafka-cluster:DescribeTransactionalId": ("DESCRIBE", TRANSACTIONAL_ID),
    "kafka-cluster:AlterTransactionalId": ("WRITE", TRANSACTIONAL_ID),
}
CONNECT = "kafka-cluster:Connect"
REQUIRED: dict[str, tuple[str, ...]] = {
    "kafka-cluster:AlterCluster": ("kafka-cluster:DescribeCluster",),
    "kafka-cluster:AlterClusterDynamicConfiguration": ("kafka-cluster:DescribeClusterDynamicConfiguration",),
    "kafka-cluster:WriteDataIdempotently": ("kafka-cluster:WriteData",),
    "kafka-cluster:AlterTopic": ("kafka-cluster:DescribeTopic",),
    "kafka-cluster:DeleteTopic": ("kafka-cluster:DescribeTopic",),
    "kafka-cluster:AlterTopicDynamicConfiguration": ("kafka-cluster:DescribeTopicDynamicConfiguration",),
    "kafka-cluster:ReadData": ("kafka-cluster:DescribeTopic", "kafka-cluster:AlterGroup"),
    "kafka-cluster:WriteData": ("kafka-cluster:DescribeTopic",),
    "kafka-cluster:AlterGroup": ("kafka-cluster:DescribeGroup",),
    "kafka-cluster:DeleteGroup": ("kafka-cluster:DescribeGroup",),
    "kafka-cluster:AlterTransactionalId": ("kafka-cluster:DescribeTransactionalId", "kafka-cluster:WriteData"),
}
_ARN_TYPES = {TOPIC: "topic", GROUP: "group", TRANSACTIONAL_ID: "transactional-id"}


class AclError(ValueError):
    """A kafka-cluster statement that has no Kafka ACL equivalent locally."""


@dataclass(frozen=True)
class Binding:
    """One Kafka ACL: ``principal`` may (``allow``) or may not perform ``operation`` on the resource pattern."""

    principal: str  # "User:<name>"
    resource_type: str
    name: str
    pattern: str  # LITERAL | PREFIXED
    operation: str
    allow: bool = True


def _resource_prefix(cluster_arn: str, resource_type: str) -> str:
    """``arn:aws:kafka:<region>:<account>:topic/<name>/<uuid>/`` for the cluster's topics (and groups, ...)."""
    head, _, tail = cluster_arn.partition(":cluster/")
    return f"{head}:{_ARN_TYPES[resource_type]}/{tail}/"


def _actions(statement: Statement) -> list[str]:
    """The kafka-cluster actions a statement names (NotAction: every one it does not name)."""
    known = [*ACTIONS, CONNECT]

    def named(action: str, patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)

    if statement.not_actions:
        return [a for a in known if not named(a, statement.not_actions)]
    return [a for a in known if named(a, statement.actions)]


def _patterns(statement: Statement, resource_type: str, cluster_arn: str) -> list[tuple[str, str]]:
    """(name, pattern type) of each of the statement's resources that names this cluster's resources of a type."""
    if statement.not_resources:
        raise AclError(f"{statement.source} {statement.sid}: NotResource on kafka-cluster actions is not supported")
    found: list[tuple[str, str]] = []
    for resource in statement.resources:
        if resource_type == CLUSTER:
            if fnmatch.fnmatchcase(cluster_arn, resource):
                found.append((CLUSTER_RESOURCE_NAME, "LITERAL"))
            continue
        prefix = _resource_prefix(cluster_arn, resource_type)
        if resource == "*":
            found.append(("*", "LITERAL"))
        elif resource.startswith(prefix):
            name = resource.removeprefix(prefix)
            if name == "*":
                found.append(("*", "LITERAL"))
            elif "*" not in name[:-1] and "?" not in name:
                found.append((name[:-1], "PREFIXED") if name.endswith("*") else (name, "LITERAL"))
            else:
                raise AclError(f"{statement.source} {statement.sid}: {resource} has no Kafka ACL equivalent")
        elif fnmatch.fnmatchcase(prefix + "any-name", resource):
            # A wildcard over this cluster's own prefix (arn:aws:kafka:*:*:topic/*/*/x): no ACL says that exactly.
            raise AclError(f"{statement.source} {statement.sid}: {resource} has no Kafka ACL equivalent")
    return found


def can_connect(statements: Iterable[Statement], cluster_arn: str) -> bool:
    """Whether kafka-cluster:Connect is allowed on the cluster (and not denied)."""
    allowed = denied = False
    for statement in statements:
        if CONNECT in _actions(statement) and any(fnmatch.fnmatchcase(cluster_arn, r) for r in statement.resources):
            if statement.effect == "Deny":
                denied = True
            elif not statement.conditions:
                allowed = True
    return allowed and not denied


def bindings(principal: str, statements: Iterable[Statement], cluster_arn: str) -> list[Binding]:
    """The Kafka ACLs equivalent to a role's kafka-cluster statements (Allow and Deny)."""
    found: dict[Binding, None] = {}
    for statement in statements:
        actions = [a for a in _actions(statement) if a != CONNECT]
        if not actions:
            continue
        if statement.conditions:
            raise AclError(f"{statement.source} {statement.sid}: conditions on kafka-cluster actions are not supported")
        for action in actions:
            operation, resource_type = ACTIONS[action]
            for name, pattern in _patterns(statement, resource_type, cluster_arn):
                binding = Binding(principal, resource_type, name, pattern, operation, statement.effect == "Allow")
                found[binding] = None
    return list(found)


def missing_required(
    statements: Sequence[Statement], cluster_arn: str, *, idempotent_producer: bool = True
) -> list[str]:
    """Each allowed kafka-cluster action whose documented required actions the role lacks (none: []). With an
    idempotent producer (the product's: ``enable_idempotence``), WriteData needs WriteDataIdempotently too: MSK
    requires it for InitProducerId, Kafka accepts WRITE on any topic instead (KIP-679), so the broker cannot tell."""
    allowed = {a for s in statements if s.effect == "Allow" for a in _actions(s)}
    missing = []
    idempotent = "kafka-cluster:WriteDataIdempotently"
    if idempotent_producer and "kafka-cluster:WriteData" in allowed and idempotent not in allowed:
        missing.append(f"kafka-cluster:WriteData by an idempotent producer needs {idempotent}")
    for action in sorted(allowed):
        needed = (*REQUIRED.get(action, ()), CONNECT) if action != CONNECT else ()
        missing += [f"{action} needs {need}" for need in needed if need not in allowed]
    if allowed and not can_connect(statements, cluster_arn):
        missing.append(f"kafka-cluster actions without {CONNECT} on {cluster_arn}")
    return missing


# -- the broker ----------------------------------------------------------------------------------------------------


def apply(admin_bootstrap: str, principals: Mapping[str, tuple[str | None, Sequence[Binding]]]) -> None:
    """Make the broker's credentials and ACLs for these principals exactly what is given (name -> (password, ACLs));
    a principal without a password (no Connect) has its SCRAM credential removed."""
    from kafka.admin._users import (  # noqa: PLC0415
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )

    with _admin(admin_bootstrap) as admin:
        alterations: list[Any] = []
        for name, (password, _) in principals.items():
            if password is None:
                alterations.append(UserScramCredentialDeletion(name, ScramMechanism.SCRAM_SHA_512))
            else:
                alterations.append(UserScramCredentialUpsertion(name, ScramMechanism.SCRAM_SHA_512, password))
        results = admin.alter_user_scram_credentials(alterations)
        removed = {name for name, (password, _) in principals.items() if password is None}
        failed = {u: e for u, e in results.items() if e and not (u in removed and "does not exist" in e)}
        if failed:
            raise AclError(f"SCRAM credentials refused: {failed}")
        _replace_acls(admin, principals.keys(), [b for _, acls in principals.values() for b in acls])


def replace_acls(admin_bootstrap: str, principal: str, acls: Sequence[Binding]) -> None:
    """Make one principal's ACLs exactly ``acls`` (its credentials stay as they are)."""
    with _admin(admin_bootstrap) as admin:
        _replace_acls(admin, [principal], acls)


def _admin(bootstrap: str) -> contextlib.closing[Any]:
    from kafka.admin import KafkaAdminClient  # noqa: PLC0415

    return contextlib.closing(KafkaAdminClient(bootstrap_servers=bootstrap, client_id="devstack-acls"))


def _replace_acls(admin: Any, principals: Iterable[str], acls: Sequence[Binding]) -> None:
    """The wanted ACLs are created first (an existing one is kept as it is), then the principals' others deleted:
    a running client never finds itself without the ACLs it keeps."""
    from kafka.admin._acls import (  # noqa: PLC0415
        ACL,
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourcePatternFilter,
        ResourceType,
    )

    wanted = [
        ACL(
            b.principal,
            "*",
            ACLOperation[b.operation],
            ACLPermissionType.ALLOW if b.allow else ACLPermissionType.DENY,
            ResourcePattern(ResourceType[b.resource_type], b.name, ACLResourcePatternType[b.pattern]),
        )
        for b in acls
    ]
    if wanted:
        result = admin.create_acls(wanted)
        if result.get("failed"):
            raise AclError(f"ACLs refused by the broker: {result['failed']}")
    any_resource = ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY)
    obsolete = []
    for name in principals:
        # describe_acls raises the broker's error itself
        current, _ = admin.describe_acls(
            ACLFilter(f"User:{name}", None, ACLOperation.ANY, ACLPermissionType.ANY, any_resource)
        )
        obsolete += [acl for acl in current if acl not in wanted]
    if obsolete:
        admin.delete_acls(
            [ACLFilter(a.principal, a.host, a.operation, a.permission_type, a.resource_pattern) for a in obsolete]
        )


# -- what the broker authorized ------------------------------------------------------------------------------------

# StandardAuthorizer's log line (org.apache.kafka.metadata.authorizer.StandardAuthorizerData#logAuditMessage).
_LOG_LINE = re.compile(
    r"Principal = User:(?P<principal>\S+) is (?P<result>Allowed|Denied) operation = (?P<operation>\w+) "
    r"from host = \S+ on resource = (?P<type>\w+):(?P<pattern>\w+):(?P<name>\S*)"
)
_OPERATIONS = {value: action for action, value in ACTIONS.items()}
_LOG_TYPES = {"TransactionalId": TRANSACTIONAL_ID}  # the log's ResourceType names that are not the enum's upper-cased


@dataclass(frozen=True)
class Observation:
    principal: str
    action: str  # the IAM action of the Kafka operation (ACTIONS read backwards)
    resource: str  # its ARN
    allowed: bool


def observed(log_files: Iterable[Path], cluster_arn: str) -> Iterator[Observation]:
    """Every distinct authorization the broker logged, as IAM actions on ARNs (``kafka-cluster:Connect`` for a
    principal that was authorized anything at all: it connected)."""
    seen: set[Observation] = set()
    for path in log_files:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            match = _LOG_LINE.search(line)
            if match is None:
                continue
            resource_type = _LOG_TYPES.get(match["type"], match["type"].upper())
            action = _OPERATIONS.get((match["operation"].upper(), resource_type))
            if action is None:
                continue
            arn = (
                cluster_arn
                if resource_type == CLUSTER
                else _resource_prefix(cluster_arn, resource_type) + match["name"]
            )
            for found in (
                Observation(match["principal"], action, arn, match["result"] == "Allowed"),
                Observation(match["principal"], CONNECT, cluster_arn, True),
            ):
                if found not in seen:
                    seen.add(found)
                    yield found
