"""Who the caller is, from the authorizer context of API Gateway's payload 2.0 event.

Shapes as documented on https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
(``requestContext.authorizer.iam`` with ``userArn``; ``requestContext.authorizer.jwt`` with ``claims`` and
``scopes``), built by the local API (devstack.apigw) or written out here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import ingest_handler
import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from devstack.apigw import LOCAL_ISSUER, http_api_event, http_result
from devstack.lambda_context import LocalLambdaContext
from notifications.callers import Caller, caller_id, caller_of
from notifications.contracts.fields import CALLER_ID_PATTERN
from tests.support import sample_request

ROLE = "arn:aws:sts::123456789012:assumed-role/shop-backend"


def event_with(authorizer: dict[str, Any] | None) -> APIGatewayProxyEventV2:
    event = http_api_event("GET", "/v1/notifications/x", caller="anonymous")
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    return APIGatewayProxyEventV2(event)


def iam(user_arn: str | None) -> dict[str, Any]:
    return {
        "iam": {
            "accessKey": "ASIAIOSFODNN7EXAMPLE",
            "accountId": "123456789012",
            "callerId": "AROAEXAMPLE:session",
            "cognitoIdentity": None,
            "principalOrgId": None,
            "userArn": user_arn,
            "userId": "AROAEXAMPLE:session",
        }
    }


def jwt(**claims: str) -> dict[str, Any]:
    return {"jwt": {"claims": claims, "scopes": ["notifications/send"]}}


def test_an_iam_user_is_a_caller_known_by_a_digest_of_its_arn():
    arn = "arn:aws:iam::123456789012:user/shop"
    caller = caller_of(event_with(iam(arn)))
    assert caller == Caller(caller_id("iam", arn), "iam")
    assert re.fullmatch(CALLER_ID_PATTERN, caller.id)
    # The id names neither the account nor the user
    assert "123456789012" not in caller.id
    assert "shop" not in caller.id


def test_an_assumed_role_is_one_caller_whatever_its_session():
    # Given the same role assumed by two instances of a shop's fleet, and another role
    first = caller_of(event_with(iam(f"{ROLE}/i-0a1b2c3d4e5f60718")))
    second = caller_of(event_with(iam(f"{ROLE}/i-0f9e8d7c6b5a49382")))
    other = caller_of(event_with(iam("arn:aws:sts::123456789012:assumed-role/reporting/i-0a1b2c3d4e5f60718")))
    # Then both sessions are one caller, the role's, and the other role is another caller
    assert first == second == Caller(caller_id("iam", ROLE), "iam")
    assert other is not None
    assert other != first


def test_a_jwt_caller_is_its_issuer_and_subject_or_client_id():
    by_sub = caller_of(event_with(jwt(iss="https://idp.example", sub="shop-a", client_id="app")))
    by_client = caller_of(event_with(jwt(iss="https://idp.example", client_id="shop-a")))
    other_issuer = caller_of(event_with(jwt(iss="https://other.example", sub="shop-a")))
    assert by_sub == by_client == Caller.jwt("https://idp.example", "shop-a")
    assert other_issuer is not None
    assert other_issuer != by_sub
    # The same text as an IAM principal is another caller too
    assert by_sub != Caller(caller_id("iam", "https://idp.example\nshop-a"), "iam")


@pytest.mark.parametrize(
    "authorizer",
    [
        None,
        {},
        iam(None),
        iam(""),
        jwt(sub="shop-a"),
        jwt(iss="https://idp.example"),
        jwt(iss="", sub="shop-a"),
        {"jwt": {"claims": None, "scopes": None}},
        {"lambda": {"shop": "a"}},
    ],
    ids=[
        "none",
        "empty",
        "iam-null-arn",
        "iam-empty-arn",
        "jwt-no-iss",
        "jwt-no-sub",
        "jwt-empty-iss",
        "jwt-null",
        "lambda",
    ],
)
def test_no_caller_when_the_context_names_no_principal(authorizer):
    assert caller_of(event_with(authorizer)) is None


MALFORMED = {
    "authorizer-string": "x",
    "authorizer-list": ["iam"],
    "iam-string": {"iam": "arn:aws:iam::123456789012:user/shop"},
    "iam-arn-number": {"iam": {"userArn": 5}},
    "iam-arn-list": {"iam": {"userArn": ["arn:aws:iam::123456789012:user/shop"]}},
    "jwt-string": {"jwt": "token"},
    "jwt-claims-list": {"jwt": {"claims": ["iss", "sub"], "scopes": []}},
    "jwt-claims-numbers": {"jwt": {"claims": {"iss": 1, "sub": 2}}},
}


@pytest.mark.parametrize("authorizer", MALFORMED.values(), ids=list(MALFORMED))
def test_a_malformed_authorizer_context_names_no_caller(authorizer):
    assert caller_of(event_with(authorizer)) is None


@pytest.mark.parametrize("authorizer", MALFORMED.values(), ids=list(MALFORMED))
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_a_malformed_authorizer_context_answers_401_with_the_error_body(moto_aws, method, authorizer):
    # Given a request whose authorizer context has an unexpected shape
    body = sample_request()
    path = "/v1/notifications" + (f"/{body['id']}" if method == "GET" else "")
    event = http_api_event(
        method,
        path,
        body=json.dumps(body) if method == "POST" else None,
        headers={"content-type": "application/json"},
        caller="anonymous",
    )
    event["requestContext"]["authorizer"] = authorizer

    # When it reaches the ingest function
    answer = http_result(ingest_handler.handler(event, LocalLambdaContext("ingest")))

    # Then it is refused as unauthenticated, in the API's error contract (not a 500)
    assert answer.status == 401, answer.body
    assert answer.json()["error"]["code"] == "unauthenticated"
    assert answer.headers["x-correlation-id"]


def test_the_local_api_builds_iam_and_jwt_callers_and_anonymous_requests():
    local = caller_of(APIGatewayProxyEventV2(http_api_event("GET", "/v1/notifications/x")))
    named = caller_of(APIGatewayProxyEventV2(http_api_event("GET", "/", headers={"X-Devstack-Caller": "shop-b"})))
    token = caller_of(APIGatewayProxyEventV2(http_api_event("GET", "/", headers={"X-Devstack-Caller": "jwt:shop-b"})))
    anonymous = APIGatewayProxyEventV2(http_api_event("GET", "/", headers={"X-Devstack-Caller": "anonymous"}))
    assert local is not None
    assert named is not None
    assert local.kind == named.kind == "iam"
    assert local != named
    assert token == Caller.jwt(LOCAL_ISSUER, "shop-b")
    assert caller_of(anonymous) is None
    # The header is the local API's: the function never sees it
    assert "x-devstack-caller" not in anonymous.headers


def test_operators_can_print_a_principals_caller_id():
    done = subprocess.run(
        [sys.executable, "-m", "notifications.callers", "iam", f"{ROLE}/any-session"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == caller_id("iam", ROLE)
