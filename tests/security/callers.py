"""Requests as a given caller, to the handler in process or to the local stack over HTTP, and what Kafka holds."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import boto3
import ingest_handler
from kafka import KafkaConsumer, TopicPartition

from devstack import aws_resources
from devstack.apigw import CALLER_HEADER, HttpResult, http_api_event, http_result
from devstack.lambda_context import LocalLambdaContext
from devstack.stack import EndpointSession

REQUESTED = "notifications.requested"


def new_caller() -> str:
    """A caller name of its own for one test (``X-Devstack-Caller``), so tests share no caller state."""
    return f"shop-{uuid.uuid4().hex[:10]}"


def new_shop(stack: Any = None) -> str:
    """A caller of its own (``new_caller``) set up as a shop: its own Slack and webhook destinations (paths
    ``/slack/<name>`` and ``/webhook/<name>`` of the local receivers), in ``stack``'s Secrets Manager, or without a
    stack in the test's in-process moto."""
    name = new_caller()
    if stack is None:
        client = boto3.client("secretsmanager", region_name="us-east-1")
        endpoints = aws_resources.Endpoints()
    else:
        client = EndpointSession(stack.info.aws_endpoint).client("secretsmanager")
        endpoints = aws_resources.Endpoints(
            slack_base_url=stack.slack.url("/slack"), webhook_base_url=stack.webhook.url("/webhook")
        )
    aws_resources.put_destinations(client, name, endpoints, signing_key=aws_resources.LOCAL_SHOPS["other-shop"])
    return name


def new_phone() -> str:
    """An E.164 number nobody else uses, so that its per-recipient quota is this test's alone."""
    return f"+49151{uuid.uuid4().int % 10**8:08d}"


# ------------------------------------------------------------------------------------------------ in process


def post(caller: str, body: dict[str, Any], **headers: str) -> HttpResult:
    """POST as ``caller`` straight to the ingest handler, in the event the local API builds (``anonymous``: none)."""
    headers = {"content-type": "application/json", CALLER_HEADER: caller, **headers}
    event = http_api_event("POST", "/v1/notifications", body=json.dumps(body), headers=headers)
    return http_result(ingest_handler.handler(event, LocalLambdaContext("ingest")))


def get(caller: str, notification_id: str) -> HttpResult:
    event = http_api_event("GET", f"/v1/notifications/{notification_id}", headers={CALLER_HEADER: caller})
    return http_result(ingest_handler.handler(event, LocalLambdaContext("ingest")))


# ----------------------------------------------------------------------------------------------- over HTTP


def call(api: str, method: str, path: str, caller: str, body: Any = None, **headers: str) -> tuple[int, dict, Any]:
    """One JSON request to the local stack as ``caller``: status, headers (lower case), JSON body."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{api}{path}",
        data=data,
        method=method,
        headers={"content-type": "application/json", CALLER_HEADER: caller, **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, json.loads(error.read() or b"null")


# ---------------------------------------------------------------------------------------------------- Kafka


def requested_records(bootstrap: str, notification_id: str) -> list[dict[str, Any]]:
    """The envelopes on the requested topic for this notification id, read up to the end offsets of now."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(REQUESTED, p) for p in consumer.partitions_for_topic(REQUESTED) or ()]
        assert partitions, "the requested topic has no partitions"
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        found = []
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for batch in consumer.poll(timeout_ms=500).values():
                found.extend(json.loads(r.value) for r in batch if r.key == notification_id.encode())
        return found
    finally:
        consumer.close()
