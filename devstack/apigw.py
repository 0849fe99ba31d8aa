"""API Gateway HTTP API (payload format 2.0) events and responses, as Lambda sees them.

Shape: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html

The local API authenticates nobody; it stands in for the authorizer by putting a caller into every event, as
``requestContext.authorizer`` holds it after API Gateway verified the request: by default the IAM user
``LOCAL_CALLER``, or whoever the request's ``X-Devstack-Caller`` header names (the header itself is not passed
on): ``<name>`` is the IAM user ``<name>`` of the local account, ``jwt:<subject>`` a JWT subject of the local
issuer with both scopes, ``anonymous`` (or nothing) no caller at all (the function answers 401).
"""

from __future__ import annotations

import base64
import functools
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from devstack.template_config import DEFAULT_TEMPLATE, HttpRoute, load_template

ACCOUNT_ID = "123456789012"
LOCAL_CALLER = "local-shop"
LOCAL_ISSUER = "https://issuer.devstack.local"
CALLER_HEADER = "x-devstack-caller"
ANONYMOUS = "anonymous"


def local_arn(service: str, resource: str, region: str = "") -> str:
    """The ARN of ``resource`` of ``service`` in the local account (``region`` empty for a global service)."""
    return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"


def caller_arn(name: str) -> str:
    """The IAM user ARN the local API gives the caller ``name``."""
    return local_arn("iam", f"user/{name}")


@functools.cache
def template_routes(template: Path = DEFAULT_TEMPLATE) -> tuple[HttpRoute, ...]:
    """The HttpApi routes of every function of ``template`` (read once per template)."""
    return tuple(route for spec in load_template(template).functions.values() for route in spec.http_routes)


def authorizer_context(caller: str) -> dict[str, Any] | None:
    """``requestContext.authorizer`` for a caller named as in ``X-Devstack-Caller`` (None: ``anonymous``).

    IAM fields as the payload 2.0 example documents them; a JWT authorizer passes the token's claims and scopes."""
    if caller in (ANONYMOUS, ""):
        return None
    if caller.startswith("jwt:"):
        subject = caller.removeprefix("jwt:")
        scopes = ["notifications/send", "notifications/read"]
        claims = {"iss": LOCAL_ISSUER, "sub": subject, "client_id": subject, "scope": " ".join(scopes)}
        return {"jwt": {"claims": claims, "scopes": scopes}}
    return {
        "iam": {
            "accessKey": "AKIAIOSFODNN7EXAMPLE",
            "accountId": ACCOUNT_ID,
            "callerId": f"AIDA{caller.upper()[:16]}",
            "cognitoIdentity": None,
            "principalOrgId": None,
            "userArn": caller_arn(caller),
            "userId": f"AIDA{caller.upper()[:16]}",
        }
    }


def _route_key(method: str, path: str, routes: Sequence[HttpRoute]) -> tuple[str, dict[str, str] | None]:
    for route in sorted(routes, key=lambda route: route.method == "ANY"):
        if route.method not in (method, "ANY"):
            continue
        want, got = route.path.strip("/").split("/"), path.strip("/").split("/")
        if len(want) != len(got):
            continue
        params = {w[1:-1]: g for w, g in zip(want, got, strict=True) if w.startswith("{")}
        if all(w == g for w, g in zip(want, got, strict=True) if not w.startswith("{")):
            return f"{route.method} {route.path}", params or None
    return "$default", None


def http_api_event(
    method: str,
    path: str,
    *,
    body: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    query: str = "",
    source_ip: str = "127.0.0.1",
    caller: str = LOCAL_CALLER,
    routes: Sequence[HttpRoute] | None = None,
) -> dict[str, Any]:
    """The event API Gateway HTTP API sends to a Lambda proxy integration (payload 2.0), for ``caller`` (named as
    in ``X-Devstack-Caller``, which wins when the headers have it), on ``routes`` (default: template.yaml's)."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    caller = lowered.pop(CALLER_HEADER, caller).strip()
    route_key, params = _route_key(method, path, template_routes() if routes is None else routes)
    raw = body.encode() if isinstance(body, str) else body
    is_text = raw is None or _is_text(lowered.get("content-type", ""))
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": lowered,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "127",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": not is_text,
    }
    if (authorizer := authorizer_context(caller)) is not None:
        event["requestContext"]["authorizer"] = authorizer
    if query:
        event["queryStringParameters"] = dict(parse_qsl(query, keep_blank_values=True))
    if params:
        event["pathParameters"] = params
    if raw is not None:
        event["body"] = raw.decode("utf-8") if is_text else base64.b64encode(raw).decode()
    return event


def _is_text(content_type: str) -> bool:
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    return kind.startswith("text/") or kind.endswith("json") or kind in ("application/x-www-form-urlencoded", "")


@dataclass(frozen=True)
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_result(response: Mapping[str, Any]) -> HttpResult:
    """Read a Lambda proxy response (payload 2.0) the way API Gateway does."""
    body = response.get("body") or ""
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    headers = {k.lower(): str(v) for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ",".join(values)
    return HttpResult(status=int(response.get("statusCode", 200)), headers=headers, body=raw)
