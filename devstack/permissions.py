"""Only what the template allows: each local function runs with its role's permissions, on AWS and on Kafka.

``Permissions.prepare`` writes every function's role (``devstack.iam.roles``) to ``<data_dir>/access/roles.json``,
makes each function the SCRAM principal ``User:<FunctionLogicalId>`` with the ACLs of its ``kafka-cluster:*``
statements (``devstack.kafka_acls``), and gives it a Kafka secret, the one read allowed outside the role (it stands
in for MSK's IAM authentication). In each function process ``install_from_env`` guards every botocore client
(``devstack.iam.guard``) and records what was allowed and denied; ``Report.collect`` joins that record and the
broker's with the roles (``python -m devstack.permissions report``). The whole picture: docs/local-stack.md, "Only
what the template allows".
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from devstack import kafka_acls
from devstack.aws_resources import put_secret
from devstack.iam.policy import Statement, evaluate
from devstack.iam.roles import Role
from devstack.intrinsics import Physical, Resolver
from devstack.msk_events import LOCAL_CLUSTER_ARN

__all__ = [
    "ACCOUNT_ID",
    "CLUSTER_ARN",
    "ENV",
    "Call",
    "Permissions",
    "Report",
    "install_from_env",
    "local_parameters",
    "local_physical",
]

ENV = "DEVSTACK_PERMISSIONS"  # <data_dir>/access: roles.json inside, call records written there
ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"
# The cluster the local broker stands for: the one the event-source mapping emulator names in its events.
CLUSTER_ARN = LOCAL_CLUSTER_ARN
KAFKA_SECRET_PREFIX = "devstack/kafka/"
_FLUSH_SECONDS = 0.5


def local_parameters(
    *, bootstrap: str, sender_address: str, destination_prefix: str, stand_ins: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The template's parameters as the local stack deploys it: MSK with IAM access control (whose
    ``kafka-cluster:*`` statements the broker's ACLs reproduce), its resources' names and ARNs, and what the
    channels' stand-ins made (``devstack.standins``)."""
    return {
        **(stand_ins or {}),
        "Environment": "dev",
        "KafkaClusterType": "MSK",
        "KafkaClusterArn": CLUSTER_ARN,
        "KafkaBootstrapServers": bootstrap,
        "SubnetIds": ["subnet-local"],
        "SecurityGroupIds": ["sg-local"],
        "EmailFromAddress": sender_address,
        "SesIdentity": sender_address,
        "DestinationSecretPrefix": destination_prefix,
    }


# ARNs of the resource types the template's policies name (ARN formats from the Service Authorization Reference).
_ARN_FORMATS = {
    "AWS::DynamoDB::Table": "arn:aws:dynamodb:{region}:{account}:table/{name}",
    "AWS::SQS::Queue": "arn:aws:sqs:{region}:{account}:{name}",
    "AWS::IAM::Role": "arn:aws:iam::{account}:role/{name}",
    "AWS::Logs::LogGroup": "arn:aws:logs:{region}:{account}:log-group:{name}:*",
    "AWS::Lambda::Function": "arn:aws:lambda:{region}:{account}:function:{name}",
}


def physical_ids(
    names: Mapping[str, str], *, region: str = REGION, account: str = ACCOUNT_ID, template: Path | None = None
) -> Physical:
    """What the template's resources are in one deployment: ``names`` (logical id -> physical name, e.g. the local
    tables), the logical id for the rest; each ``Arn`` in its type's format."""
    from devstack.template_config import DEFAULT_TEMPLATE, expanded_template  # noqa: PLC0415

    resources = expanded_template(template or DEFAULT_TEMPLATE).get("Resources") or {}

    def default(logical_id: str, attribute: str | None) -> str:
        name = names.get(logical_id, logical_id)
        if attribute is None:
            return name
        kind = (resources.get(logical_id) or {}).get("Type", "")
        form = _ARN_FORMATS.get(kind, "arn:aws:cloudformation:{region}:{account}:resource/{name}")
        return form.format(region=region, account=account, name=name)

    return Physical(default=default)


def local_physical(names: Mapping[str, str], configuration_set: str, template: Path | None = None) -> Physical:
    """The local stack's resources: its tables by name (``names``: logical id -> table name), its configuration
    set, ARNs in the local account for the rest."""
    return physical_ids({**names, "EmailConfigurationSet": configuration_set}, template=template)


_STATEMENTS = TypeAdapter(tuple[Statement, ...])


def write_roles(path: Path, roles: Mapping[str, Role], account: Mapping[str, Any]) -> None:
    data = {
        "account": dict(account),
        "roles": {fid: {"name": r.name, "statements": [asdict(s) for s in r.statements]} for fid, r in roles.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def read_roles(path: Path) -> tuple[dict[str, Role], dict[str, Any]]:
    data = json.loads(path.read_text())
    account = data["account"]
    roles = {
        fid: Role(fid, r["name"], account["account_id"], _STATEMENTS.validate_python(r["statements"]))
        for fid, r in data["roles"].items()
    }
    return roles, account


# -- the stack's side --------------------------------------------------------------------------------------------


@dataclass
class Permissions:
    """Prepared by the stack once its broker and AWS stand-ins run (``prepare``), used for each function's
    environment (``function_environment``)."""

    directory: Path
    parameters: Mapping[str, Any] = field(default_factory=dict)
    physical: Physical = field(default_factory=Physical)
    # The translated template and its resolver, once ``deploy`` read the stack's template.
    document: Mapping[str, Any] = field(default_factory=dict)
    resolver: Resolver | None = None
    admin_bootstrap: str = ""
    roles: dict[str, Role] = field(default_factory=dict)
    kafka_secrets: dict[str, str] = field(default_factory=dict)  # function -> secret ARN
    sasl_bootstrap: str = ""

    @property
    def roles_file(self) -> Path:
        return self.directory / "roles.json"

    def prepare(
        self,
        roles: Mapping[str, Role],
        *,
        secretsmanager: Any,
        admin_bootstrap: str,
        sasl_bootstrap: str,
        secret_arns: Mapping[str, str],
        ses_identities: Sequence[str] = (),
    ) -> None:
        """Credentials and ACLs on the broker, one Kafka secret per function, the roles for the function processes."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob("calls-*.json"):  # a restarted stack's record starts afresh
            stale.unlink()
        self.admin_bootstrap = admin_bootstrap
        self.roles = dict(roles)
        self.sasl_bootstrap = sasl_bootstrap
        principals: dict[str, tuple[str | None, Sequence[kafka_acls.Binding]]] = {}
        for function, role in roles.items():
            password = secrets.token_urlsafe(24)
            value = json.dumps({"username": function, "password": password})
            self.kafka_secrets[function] = put_secret(secretsmanager, KAFKA_SECRET_PREFIX + function, value)
            connects = kafka_acls.can_connect(role.statements, CLUSTER_ARN)
            acls = kafka_acls.bindings(f"User:{function}", role.statements, CLUSTER_ARN)
            principals[function] = (password if connects else None, acls)
        kafka_acls.apply(admin_bootstrap, principals)
        account = {
            "region": REGION,
            "account_id": ACCOUNT_ID,
            "secret_arns": {**secret_arns, **{KAFKA_SECRET_PREFIX + f: a for f, a in self.kafka_secrets.items()}},
            "kafka_secrets": self.kafka_secrets,
            "ses_identities": list(ses_identities),
        }
        write_roles(self.roles_file, roles, account)

    def deploy(self, template: Path) -> dict[str, Role]:
        """The stack's template translated once for this deployment (kept for its custom resources): its roles."""
        from devstack.iam.roles import deployment, roles_in  # noqa: PLC0415

        self.document, self.resolver = deployment(
            self.physical, self.parameters, template=template, region=REGION, account_id=ACCOUNT_ID
        )
        return roles_in(self.document, self.resolver)

    def roles_of(self, template: Path) -> dict[str, Role]:
        """Every function's role as another template (a copy under test) would give it in this stack."""
        from devstack.iam.roles import roles  # noqa: PLC0415

        return roles(self.physical, self.parameters, template=template, region=REGION, account_id=ACCOUNT_ID)

    def apply_kafka_acls(self, role: Role) -> None:
        """The broker's ACLs for one function, from ``role`` (its credentials unchanged)."""
        acls = kafka_acls.bindings(f"User:{role.function}", role.statements, CLUSTER_ARN)
        kafka_acls.replace_acls(self.admin_bootstrap, role.function, acls)

    def function_environment(self, function: str) -> dict[str, str]:
        """Kafka through the SASL listener as the function's own principal (the guard on its AWS calls is ``ENV``)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.sasl_bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_SECRET_ARN": self.kafka_secrets[function],
        }


# -- the function's side -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One authorization a function needed: an AWS call's (action, resource, context), or a Kafka operation."""

    function: str
    action: str
    resource: str
    allowed: bool
    context: tuple[tuple[str, str], ...] = ()


class _Recorder:
    """The distinct authorizations of one function process, written to its file every half second and at exit."""

    def __init__(self, directory: Path, function: str) -> None:
        self.path = directory / f"calls-{function}-{os.getpid()}.json"
        self.function = function
        self._calls: set[Call] = set()
        self._lock = threading.Lock()
        self._dirty = False

    def record(self, action: str, resource: str, context: Mapping[str, str], allowed: bool) -> None:
        call = Call(self.function, action, resource, allowed, tuple(sorted(context.items())))
        with self._lock:
            if call not in self._calls:
                self._calls.add(call)
                self._dirty = True

    def dump(self) -> None:
        """Write every call so far (the flushing thread and the exit handler take turns: one writer at a time)."""
        with self._lock:
            if not self._dirty:
                return
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps([asdict(c) for c in self._calls]))
            tmp.replace(self.path)
            self._dirty = False

    def run(self) -> None:
        while True:
            time.sleep(_FLUSH_SECONDS)
            self.dump()


_installed: Any = None


def install_from_env(function: str) -> Any:
    """In a function process: check every AWS call against the function's role when ``DEVSTACK_PERMISSIONS`` is
    set (once per process; answers the guard, or None)."""
    global _installed  # noqa: PLW0603
    directory = os.environ.get(ENV)
    if not directory or _installed is not None:
        return _installed
    from devstack.iam.guard import Guard  # noqa: PLC0415
    from devstack.iam.requests import Account, Authorization  # noqa: PLC0415

    roles, account_data = read_roles(Path(directory) / "roles.json")
    role = roles[function]
    own_kafka_secret = account_data["kafka_secrets"].get(function)
    recorder = _Recorder(Path(directory), function)

    def own_credentials(authorization: Authorization) -> bool:
        """The stand-in for MSK IAM authentication (module docstring): allowed, and not the role's to answer for."""
        return authorization.action == "secretsmanager:GetSecretValue" and authorization.resource == own_kafka_secret

    def decide(authorization: Authorization) -> bool:
        if own_credentials(authorization):
            return True
        return evaluate(role.statements, authorization.action, authorization.resource, authorization.context).allowed

    def on_call(authorization: Authorization, allowed: bool) -> None:
        """Every authorization the guard decided, unmapped calls (denied without a decision) included."""
        if not own_credentials(authorization):
            recorder.record(authorization.action, authorization.resource, authorization.context, allowed)

    account = Account(
        region=account_data["region"],
        account_id=account_data["account_id"],
        secret_arns=account_data["secret_arns"],
        ses_identities=frozenset(account_data.get("ses_identities", ())),
    )
    guard = Guard(role.principal_arn, account, decide, on_call)
    guard.install()
    atexit.register(recorder.dump)
    threading.Thread(target=recorder.run, name="permissions-report", daemon=True).start()
    _installed = guard
    return guard


_CALLS = TypeAdapter(list[Call])


# -- the report --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """Every authorization the functions needed, each with the statements of its role that allow it."""

    calls: tuple[Call, ...]
    roles: Mapping[str, Role]

    @classmethod
    def collect(cls, directory: Path, broker_logs: Iterable[Path] = ()) -> Report:
        """One stack's record (its ``access`` folder, or an ``archive`` of it) and its broker's authorizer log."""
        calls = {call for path in directory.glob("calls-*.json") for call in _CALLS.validate_json(path.read_text())}
        calls.update(
            Call(o.principal, o.action, o.resource, o.allowed) for o in kafka_acls.observed(broker_logs, CLUSTER_ARN)
        )
        roles = read_roles(directory / "roles.json")[0] if (directory / "roles.json").exists() else {}
        return cls(tuple(sorted(calls, key=lambda c: (c.function, c.action, c.resource))), roles)

    def denied(self) -> list[Call]:
        """Calls the role does not allow, evaluated now against the roles of the template the stack ran (so a test
        that ran a function with a narrower copy of the template for a while is judged by the template itself)."""
        return [c for c in self.calls if not self.allows(c)]

    def allows(self, call: Call) -> bool:
        role = self.roles.get(call.function)
        return role is not None and evaluate(role.statements, call.action, call.resource, dict(call.context)).allowed

    def used(self) -> set[tuple[str, str, str | None]]:
        """(function, source, sid) of every template statement some recorded call needed."""
        return {
            (fid, s.source, s.sid)
            for fid, role in self.roles.items()
            for s in role.template_statements
            if any(
                c.function == fid and c.allowed and evaluate([s], c.action, c.resource, dict(c.context)).allowed
                for c in self.calls
            )
        }

    def unused(self) -> list[tuple[str, Statement]]:
        """(function, statement) of every template statement no recorded call needed."""
        used = self.used()
        return [
            (fid, s)
            for fid, role in self.roles.items()
            for s in role.template_statements
            if (fid, s.source, s.sid) not in used
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": [asdict(c) for c in self.calls],
            "unused": [{"function": f, "source": s.source, "sid": s.sid} for f, s in self.unused()],
        }


def explained(template_text: str, sid: str | None) -> bool:
    """Whether template.yaml says when a statement is used: a comment saying "used ..." on each line that names
    its Sid, or in the comment just above it (above the ``- !If`` where a statement is conditional)."""
    lines = template_text.splitlines()
    where = [i for i, line in enumerate(lines) if sid and re.search(rf"\bSid: {re.escape(sid)}\b", line)]

    def says_when(line: str) -> bool:
        comment = line.partition("#")[2]
        return bool(re.search(r"\bused\b", comment, re.IGNORECASE))

    def above(i: int) -> list[str]:
        """The lines just above a Sid that still belong to its statement (comments, ``- !If``, the condition)."""
        found = []
        for line in reversed(lines[max(0, i - 8) : i]):
            if re.search(r"\b(Sid|Effect|Action|Resource|Condition|Statement):", line):
                break
            found.append(line)
        return found

    return bool(where) and all(any(says_when(line) for line in [lines[i], *above(i)]) for i in where)


def archive(access_dir: Path, broker_logs: Iterable[Path], destination: Path) -> Path:
    """Keep one stack's record (its roles, its functions' calls, the broker's authorizations as calls) in a new
    folder of ``destination``, for a report over several stacks (each evaluated against its own roles)."""
    import shutil  # noqa: PLC0415

    folder = destination / f"stack-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
    folder.mkdir(parents=True)
    for path in [access_dir / "roles.json", *access_dir.glob("calls-*.json")]:
        if path.exists():
            shutil.copy2(path, folder / path.name)
    kafka = [
        asdict(Call(o.principal, o.action, o.resource, o.allowed))
        for o in kafka_acls.observed(broker_logs, CLUSTER_ARN)
    ]
    (folder / "calls-kafka.json").write_text(json.dumps(kafka))
    return folder


TABLE_BEGIN = "<!-- permissions table: python -m devstack.permissions table -->"
TABLE_END = "<!-- end of permissions table -->"


def template_roles(template: Path | None = None) -> dict[str, Role]:
    """Every function's role as the template gives it, with placeholders for one deployment's names
    (``<StatusTable>``, ``<cluster>``, ``<region>``, ...)."""
    from devstack.iam.roles import roles  # noqa: PLC0415
    from devstack.template_config import DEFAULT_TEMPLATE  # noqa: PLC0415

    template = template or DEFAULT_TEMPLATE
    physical = physical_ids({}, region="<region>", account="<account>", template=template)
    parameters = {
        **placeholders(template),
        "KafkaClusterType": "MSK",
        "KafkaClusterArn": "arn:aws:kafka:<region>:<account>:cluster/<cluster>/<uuid>",
        "KafkaBootstrapServers": "<brokers>",
        "DestinationSecretPrefix": "<DestinationSecretPrefix>",
    }
    return roles(physical, parameters, template=template, region="<region>", account_id="<account>")


def placeholders(template: Path) -> dict[str, Any]:
    """A placeholder for each parameter without a default: ``<Name>``, a list of one for a list type, and a secret's
    ARN for a parameter whose pattern is one (``arn:aws:secretsmanager:<region>:<account>:secret:<Name>``)."""
    from devstack.template_config import load_yaml  # noqa: PLC0415

    found: dict[str, Any] = {}
    for name, declared in (load_yaml(template).get("Parameters") or {}).items():
        if "Default" in declared:
            continue
        kind = str(declared.get("Type", "String"))
        if kind.startswith(("List<", "CommaDelimitedList")):
            found[name] = [f"<{name}>"]
        elif ":secretsmanager:" in str(declared.get("AllowedPattern", "")):
            found[name] = f"arn:aws:secretsmanager:<region>:<account>:secret:<{name}>"
        else:
            found[name] = f"<{name}>"
    return found


def table(template: Path | None = None) -> str:
    """Markdown: what each function's role allows, statement by statement, as the template gives it."""
    from devstack.iam.roles import AWS_MANAGED  # noqa: PLC0415

    found = template_roles(template)
    lines = [
        TABLE_BEGIN,
        "",
        "| function | statement | effect | actions | resources |",
        "| --- | --- | --- | --- | --- |",
    ]
    for function, role in found.items():
        managed = [s.source.removeprefix(AWS_MANAGED) for s in role.statements if s.source.startswith(AWS_MANAGED)]
        if managed:
            lines.append(
                f"| {function} | AWS managed: {', '.join(managed)} | Allow | Lambda's own (logs, traces, "
                "network interfaces) | `*` |"
            )
        for statement in role.statements:
            if statement.source.startswith(AWS_MANAGED):
                continue
            name = f"{statement.source.split('/')[0]} {statement.sid or ''}".strip()
            resources = ", ".join(f"`{_short(r)}`" for r in statement.resources or statement.not_resources)
            actions = ", ".join(f"`{a}`" for a in statement.actions or statement.not_actions)
            lines.append(f"| {function} | {name} | {statement.effect} | {actions} | {resources} |")
    return "\n".join([*lines, "", TABLE_END])


def _short(arn: str) -> str:
    """An ARN without its partition, region and account (``dynamodb:table/<StatusTable>``)."""
    parts = arn.split(":", 5)
    return f"{parts[2]}:{parts[5]}" if len(parts) == 6 else arn


def write_table(path: Path) -> None:
    """Replace the table between its markers in ``path`` with the one the template gives."""
    text = path.read_text()
    start, end = text.index(TABLE_BEGIN), text.index(TABLE_END) + len(TABLE_END)
    path.write_text(text[:start] + table() + text[end:])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.permissions", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    table_command = sub.add_parser("table", help="the Markdown table of every function's permissions")
    table_command.add_argument("--write", type=Path, help="replace the table in this file (docs/security.md)")
    report = sub.add_parser("report", help="the least-privilege report of a stack's data dir")
    report.add_argument("--data-dir", type=Path, default=Path(".devstack"))
    args = parser.parse_args(argv)
    if args.command == "table":
        if args.write is None:
            print(table())
        else:
            write_table(args.write)
        return 0
    data_dir: Path = args.data_dir
    result = Report.collect(data_dir / "access", sorted((data_dir / "kafka").glob("authorizer.log*")))
    json.dump(result.to_json(), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 1 if result.denied() else 0


if __name__ == "__main__":
    raise SystemExit(main())
