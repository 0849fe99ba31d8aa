"""Each function's role as AWS would create it from template.yaml, with the local stack's resources as ARNs.

The template is expanded (``Fn::ForEach``, as ``AWS::LanguageExtensions`` does) and then translated by SAM's own
translator (``samtranslator``, the package SAM CLI bundles and CloudFormation's ``AWS::Serverless`` transform
runs), so a function's role is exactly what SAM makes of its ``Policies``: inline statements, SAM policy templates,
the template's managed policies, and the AWS managed policies SAM attaches itself (``managed``). Standalone
``AWS::IAM::Policy`` resources that name the role are attached too. Every intrinsic is then evaluated with this
deployment's parameters and physical ids (``devstack.intrinsics``).

Statements keep where they came from (``Statement.source``): ``aws-managed:<Name>`` for AWS's policies,
``<PolicyLogicalId>`` for the template's managed and standalone policies, ``<Role>/<PolicyName>`` for inline ones.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.iam import managed
from devstack.iam.policy import Statement, statements
from devstack.intrinsics import Physical, Resolver
from devstack.template_config import DEFAULT_TEMPLATE, expanded_template

__all__ = [
    "AWS_MANAGED",
    "SAM_GENERATED",
    "Role",
    "deployment",
    "roles",
    "roles_in",
    "translate",
    "translated",
    "with_placeholder_code",
]

AWS_MANAGED = "aws-managed:"
SAM_GENERATED = "sam-generated:"  # inline policies SAM writes for a property (DeadLetterQueue, events), not Policies


@dataclass(frozen=True)
class Role:
    function: str
    name: str  # the role's logical id (SAM: <Function>Role)
    account_id: str
    statements: tuple[Statement, ...]

    @property
    def principal_arn(self) -> str:
        """The principal a call is denied to: Lambda assumes the role with the function's name as session name."""
        return f"arn:aws:sts::{self.account_id}:assumed-role/{self.name}/{self.function}"

    @property
    def template_statements(self) -> tuple[Statement, ...]:
        """The statements written in template.yaml (not AWS's managed policies)."""
        return tuple(s for s in self.statements if not s.source.startswith((AWS_MANAGED, SAM_GENERATED)))


def translated(
    template: Path = DEFAULT_TEMPLATE, parameters: Mapping[str, Any] | None = None, region: str = "us-east-1"
) -> dict[str, Any]:
    """The template as SAM's transform turns it into plain CloudFormation (code locations are placeholders)."""
    return translate(with_placeholder_code(expanded_template(template)), parameters, region)


def with_placeholder_code(document: Mapping[str, Any], bucket: str = "local-artifacts") -> dict[str, Any]:
    """An expanded template whose functions' and layers' code is at ``s3://<bucket>/<LogicalId>``.

    As `sam package` leaves it, but independent of the code: SAM names a layer version after a hash of its
    properties, its code location included.
    """
    placed = copy.deepcopy(dict(document))
    for logical_id, resource in (placed.get("Resources") or {}).items():
        props = resource.setdefault("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = f"s3://{bucket}/{logical_id}"
        if resource.get("Type") == "AWS::Serverless::LayerVersion" and isinstance(props.get("ContentUri"), str):
            props["ContentUri"] = f"s3://{bucket}/{logical_id}"
    return placed


def translate(
    expanded: Mapping[str, Any], parameters: Mapping[str, Any] | None = None, region: str = "us-east-1"
) -> dict[str, Any]:
    """An expanded template (no ``Fn::ForEach`` left) as SAM's transform turns it into plain CloudFormation."""
    import boto3  # noqa: PLC0415
    from samtranslator.parser.parser import Parser  # noqa: PLC0415
    from samtranslator.translator.translator import Translator  # noqa: PLC0415

    document = copy.deepcopy(dict(expanded))
    transform = document.get("Transform")
    transforms = transform if isinstance(transform, list) else [transform]
    document["Transform"] = next(t for t in transforms if t != "AWS::LanguageExtensions")
    translator = Translator(
        managed_policy_map=None, sam_parser=Parser(), boto_session=boto3.session.Session(region_name=region)
    )
    result: dict[str, Any] = translator.translate(
        sam_template=document,
        parameter_values=dict(parameters or {}),
        get_managed_policy_map=managed.arns,
    )
    return result


def deployment(
    physical: Physical,
    parameters: Mapping[str, Any],
    *,
    template: Path = DEFAULT_TEMPLATE,
    region: str = "us-east-1",
    account_id: str = "123456789012",
) -> tuple[dict[str, Any], Resolver]:
    """The translated template and what evaluates its values in one deployment (parameters, physical ids)."""
    pseudo = {"AWS::Region": region, "AWS::AccountId": account_id, "AWS::Partition": "aws", "AWS::URLSuffix": ""}
    document = translated(template, {**parameters, **pseudo}, region)
    return document, Resolver(document, {**parameters, **pseudo}, physical)


def roles(physical: Physical, parameters: Mapping[str, Any], **where: Any) -> dict[str, Role]:
    """Every function's role, by function logical id (``where``: ``deployment``'s template, region, account_id)."""
    return roles_in(*deployment(physical, parameters, **where))


def roles_in(document: Mapping[str, Any], resolver: Resolver) -> dict[str, Role]:
    """Every function's role in a translated template (``deployment``), by function logical id."""
    resources: Mapping[str, Any] = document["Resources"]
    account_id = str(resolver.resolve({"Ref": "AWS::AccountId"}))
    managed_by_arn: dict[str, str] = {}  # a template managed policy's ARN -> its logical id
    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::IAM::ManagedPolicy":
            managed_by_arn[str(resolver.resolve({"Ref": logical_id}))] = logical_id

    found: dict[str, Role] = {}
    for function_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        role_ref = (resource.get("Properties") or {}).get("Role")
        role_id = role_ref["Fn::GetAtt"][0] if isinstance(role_ref, dict) and "Fn::GetAtt" in role_ref else None
        if role_id is None:
            continue  # a role from outside the template: nothing to read
        role_props = resolver.resolve(resources[role_id].get("Properties") or {})
        collected: list[Statement] = []
        for arn in role_props.get("ManagedPolicyArns", []):
            if arn in managed_by_arn:
                policy_id = managed_by_arn[arn]
                document_ = resolver.resolve(resources[policy_id]["Properties"]["PolicyDocument"])
                collected += statements(document_, policy_id)
            else:
                collected += statements(managed.document(arn), AWS_MANAGED + arn.rsplit("/", 1)[-1])
        for inline in role_props.get("Policies", []):
            name = str(inline["PolicyName"])
            # SAM names the inline policies of a function's Policies <Role>Policy<N>; others it adds itself.
            own = name.removeprefix(f"{role_id}Policy").isdigit()
            collected += statements(inline["PolicyDocument"], f"{'' if own else SAM_GENERATED}{role_id}/{name}")
        for policy_id, policy in resources.items():
            if policy.get("Type") != "AWS::IAM::Policy" or not _condition_holds(resolver, policy):
                continue
            props = policy.get("Properties") or {}
            if {"Ref": role_id} in props.get("Roles", []):
                collected += statements(resolver.resolve(props["PolicyDocument"]), policy_id)
        found[function_id] = Role(function_id, role_id, account_id, tuple(collected))
    return found


def _condition_holds(resolver: Resolver, resource: Mapping[str, Any]) -> bool:
    condition = resource.get("Condition")
    return True if condition is None else resolver.condition(str(condition))
