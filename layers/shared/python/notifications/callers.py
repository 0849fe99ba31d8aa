"""Who calls: the caller of a request, from what API Gateway's authorizer put into the event.

The HTTP API authorizes every route (template.yaml: IAM or JWT) and hands the function what it verified, in the
payload 2.0 event's ``requestContext.authorizer`` (https://docs.aws.amazon.com/apigateway/latest/developerguide/
http-api-develop-integrations-lambda.html):

- IAM: ``authorizer.iam`` with ``userArn`` (and ``accountId``, ``userId``, ``accessKey``, ...). An assumed role's
  ARN ends with the session name, which changes per session (an EC2 instance id, an ECS task id): the caller is
  the role, so one shop's fleet is one caller.
- JWT: ``authorizer.jwt`` with ``claims`` (the token's claims) and ``scopes``. The caller is the issuer (``iss``)
  and subject (``sub``; a client-credentials token may carry only ``client_id``). Scopes are checked by API
  Gateway per route (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html).

Anything else in the context (a string, a list, an ARN that is not a string: never sent by API Gateway, but
the event is input) names no caller: the request answers 401, like one without a context.

A caller is known by a stable id that is a digest of its principal: it keys the caller's data and appears in logs
and Kafka envelopes without naming a person or an account. ``python -m notifications.callers iam <arn>`` (or
``jwt <iss> <sub>``) prints the id of a principal, for operators.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

CallerKind = Literal["iam", "jwt"]
_ASSUMED_ROLE_SESSION = re.compile(r"^(arn:[^:]+:sts::[0-9]{12}:assumed-role/[^/]+)/.+$")


@lru_cache(maxsize=1024)  # an execution environment serves few principals, each many times
def caller_id(kind: CallerKind, principal: str) -> str:
    """``c-`` and 26 base32 letters (130 bits) of the SHA-256 of the principal; matches ``CALLER_ID_PATTERN``."""
    digest = hashlib.sha256(f"{kind}\n{principal}".encode()).digest()
    return "c-" + base64.b32encode(digest).decode()[:26].lower()


def iam_principal(user_arn: str) -> str:
    """The caller an IAM ARN stands for: an assumed role without its session name, anything else as it is."""
    match = _ASSUMED_ROLE_SESSION.fullmatch(user_arn)
    return match.group(1) if match else user_arn


@dataclass(frozen=True)
class Caller:
    id: str
    kind: CallerKind

    @classmethod
    def iam(cls, user_arn: str) -> Caller:
        return cls(caller_id("iam", iam_principal(user_arn)), "iam")

    @classmethod
    def jwt(cls, issuer: str, subject: str) -> Caller:
        return cls(caller_id("jwt", f"{issuer}\n{subject}"), "jwt")


class _Iam(BaseModel, strict=True):
    userArn: str | None = None  # noqa: N815 - API Gateway's name


class _Jwt(BaseModel, strict=True):
    claims: dict[str, Any] | None = None


class _Authorizer(BaseModel, strict=True):
    """The part of ``requestContext.authorizer`` that names a caller; other fields are ignored."""

    iam: _Iam | None = None
    jwt: _Jwt | None = None


def caller_of(event: APIGatewayProxyEventV2) -> Caller | None:
    """The request's caller, or None when the authorizer context names none (the request is then refused)."""
    try:
        authorizer = _Authorizer.model_validate(event.request_context.get("authorizer") or {})
    except ValidationError:
        return None
    if authorizer.iam is not None and authorizer.iam.userArn:
        return Caller.iam(authorizer.iam.userArn)
    claims = (authorizer.jwt and authorizer.jwt.claims) or {}
    issuer, subject = claims.get("iss"), claims.get("sub") or claims.get("client_id")
    if isinstance(issuer, str) and issuer and isinstance(subject, str) and subject:
        return Caller.jwt(issuer, subject)
    return None


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["iam", arn]:
            print(Caller.iam(arn).id)  # noqa: T201
        case ["jwt", issuer, subject]:
            print(Caller.jwt(issuer, subject).id)  # noqa: T201
        case _:
            sys.exit("usage: python -m notifications.callers iam <arn> | jwt <issuer> <subject>")
