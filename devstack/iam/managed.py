"""The AWS managed policies SAM attaches to function roles, as AWS publishes them.

SAM adds ``AWSLambdaBasicExecutionRole`` to every function role, ``AWSXrayWriteOnlyAccess`` with ``Tracing:
Active`` and ``AWSLambdaVPCAccessExecutionRole`` with ``VpcConfig`` (SAM specification, AWS::Serverless::Function
``Policies``/``Tracing``/``VpcConfig``). Their documents, from the AWS Managed Policy Reference Guide:
https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaBasicExecutionRole.html,
https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSXrayWriteOnlyAccess.html,
https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaVPCAccessExecutionRole.html.
Lambda itself uses them (log delivery, trace segments, the function's network interfaces); the code does not.
"""

from __future__ import annotations

from typing import Any

_ALL = "*"

DOCUMENTS: dict[str, dict[str, Any]] = {
    "AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": _ALL,
            }
        ],
    },
    "AWSXrayWriteOnlyAccess": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                    "xray:GetSamplingStatisticSummaries",
                ],
                "Resource": [_ALL],
            }
        ],
    },
    "AWSLambdaVPCAccessExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSubnets",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                "Resource": _ALL,
            }
        ],
    },
}

ARNS = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSLambdaVPCAccessExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
}


def document(arn: str) -> dict[str, Any]:
    """The managed policy behind ``arn``; one this project does not know is an error, never an empty grant."""
    name = arn.rsplit("/", 1)[-1]
    if ARNS.get(name) != arn:
        raise LookupError(f"AWS managed policy {arn} is not known locally (add its document to devstack.iam.managed)")
    return DOCUMENTS[name]
