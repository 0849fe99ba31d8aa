"""CloudFormation's part of a deploy that the local stack plays too: every custom resource of the template is
created by invoking its function, which answers on a pre-signed URL.

The requests and answers are the CloudFormation user guide's ("Custom resource request objects", "Custom resource
response objects": https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requests.html and
crpg-ref-responses.html): a ``Create`` request with the resource's properties evaluated, a ``ResponseURL`` the
function PUTs its JSON answer to, ``SUCCESS`` or ``FAILED`` with a ``Reason``. Locally the URL is a server on
127.0.0.1 (``Responses``), and the function runs in its own process with its role's permissions, as every function
of the local stack does, so what the topics function does at deploy time is authorized and recorded like the rest.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from devstack.intrinsics import Resolver
from devstack.threaded_server import ThreadedServer

__all__ = ["CustomResource", "Responses", "custom_resources"]

STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/notifications-local/local"


@dataclass(frozen=True)
class CustomResource:
    logical_id: str
    resource_type: str
    function: str  # logical id of the function behind its ServiceToken
    properties: Mapping[str, Any]

    def create_event(self, response_url: str) -> dict[str, Any]:
        """The ``Create`` request CloudFormation sends the function."""
        return {
            "RequestType": "Create",
            "ServiceToken": self.properties.get("ServiceToken", ""),
            "ResponseURL": f"{response_url}/{self.logical_id}",
            "StackId": STACK_ID,
            "RequestId": str(uuid.uuid4()),
            "LogicalResourceId": self.logical_id,
            "ResourceType": self.resource_type,
            "ResourceProperties": dict(self.properties),
        }


def custom_resources(document: Mapping[str, Any], resolver: Resolver) -> list[CustomResource]:
    """The template's custom resources whose ServiceToken is a function of the template, with their properties
    evaluated."""
    found = []
    for logical_id, resource in (document.get("Resources") or {}).items():
        kind = str(resource.get("Type", ""))
        if not (kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource"):
            continue
        raw = (resource.get("Properties") or {}).get("ServiceToken")
        target = raw.get("Fn::GetAtt") if isinstance(raw, dict) else None
        if not isinstance(target, list) or len(target) != 2 or target[1] != "Arn":
            continue  # a token outside this template: nothing of ours to run
        properties = resolver.resolve(resource.get("Properties") or {})
        found.append(CustomResource(logical_id, kind, str(target[0]), properties))
    return found


class Responses:
    """The pre-signed URL stand-in: collects each function's answer by logical id."""

    def __init__(self) -> None:
        self.answers: dict[str, dict[str, Any]] = {}
        self._arrived = threading.Condition()
        responses = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    answer = json.loads(body)
                except ValueError:
                    answer = {"Status": "FAILED", "Reason": f"not JSON: {body[:200]!r}"}
                with responses._arrived:
                    responses.answers[self.path.rsplit("/", 1)[-1]] = answer
                    responses._arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadedServer(Handler, name="cloudformation-responses")

    def start(self) -> Responses:
        self._server.start()
        return self

    @property
    def url(self) -> str:
        return self._server.url("/cloudformation")

    def stop(self) -> None:
        self._server.stop()
