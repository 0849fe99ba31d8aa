"""The AWS managed policies SAM attaches to function roles, as AWS publishes them.

SAM adds ``AWSLambdaBasicExecutionRole`` to every function role, ``AWSXrayWriteOnlyAccess`` with ``Tracing:
Active`` and ``AWSLambdaVPCAccessExecutionRole`` with ``VpcConfig`` (SAM specification, AWS::Serverless::Function
``Policies``/``Tracing``/``VpcConfig``). Their documents and paths are the AWS Managed Policy Reference Guide's
(https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaBasicExecutionRole.html and the pages
beside it), as moto ships them (``moto.iam.aws_managed_policies``). Lambda itself uses them (log delivery, trace
segments, the function's network interfaces); the code does not.
"""

from __future__ import annotations

import functools
import json
from typing import Any

NAMES = ("AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess", "AWSLambdaVPCAccessExecutionRole")


@functools.cache
def _published() -> dict[str, Any]:
    from moto.iam.aws_managed_policies import aws_managed_policies_data  # noqa: PLC0415 - 4 MB, read when needed

    return {name: policy for name, policy in json.loads(aws_managed_policies_data).items() if name in NAMES}


def arns() -> dict[str, str]:
    """The ARN of each policy by name (SAM's managed policy map)."""
    return {name: f"arn:aws:iam::aws:policy{policy['Path']}{name}" for name, policy in _published().items()}


def document(arn: str) -> dict[str, Any]:
    """The managed policy behind ``arn``; one this project does not know is an error, never an empty grant."""
    name = arn.rsplit("/", 1)[-1]
    if arns().get(name) != arn:
        raise LookupError(f"AWS managed policy {arn} is not known locally (add its name to devstack.iam.managed)")
    return dict(_published()[name]["Document"])
