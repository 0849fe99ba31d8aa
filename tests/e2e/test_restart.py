"""The local stack restarted mid-stream keeps what it knew: status and idempotency live in the local DynamoDB
(dynalite on LevelDB, ``devstack.dynamodb_local``) in the stack's data dir, next to Kafka's data.

A client that did not get its answer retries with the same ``Idempotency-Key``; after the restart that retry must
be answered as a replay (``Idempotent-Replayed: true``, the first 202 again) and must not send anything twice,
and ``GET /v1/notifications/{id}`` must still answer for notifications accepted before the restart.
This test starts its own stack (it stops and starts it), on Slack only, whose receiver counts every post.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
import uuid
from collections import Counter
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import LocalStack
from tests.e2e.conftest import EXTERNAL_BOOTSTRAP
from tests.e2e.test_local_stack import eventually, states
from tests.support import access_archive, isolated_stack_config, sample_request

pytestmark = pytest.mark.e2e

MID_STREAM = 6  # posted right before the stop, not waited for


def post(api: str, body: dict[str, Any]) -> tuple[int, Message, Any]:
    """POST a purchase with its id as the Idempotency-Key: status, headers (case-insensitive), JSON body."""
    request = urllib.request.Request(
        f"{api}/v1/notifications",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"content-type": "application/json", "Idempotency-Key": str(body["id"])},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read() or b"null")


def slack_posts(stack: LocalStack, orders: list[str]) -> Counter[str]:
    """Order id -> posts the Slack receiver of this run of the stack accepted."""
    assert stack.slack is not None
    found: Counter[str] = Counter()
    for delivery in stack.slack.accepted("/slack/local-shop"):
        text = delivery.body.decode()
        found.update(order for order in orders if order in text)
    return found


def purchase(run: str, i: int) -> dict[str, Any]:
    body = sample_request(channels=["slack"])
    body["purchase"]["order_id"] = f"RS-{run}-{i:03d}"
    return body


def test_after_a_restart_a_retry_is_a_replay_and_status_is_still_there(tmp_path: Path, tmp_path_factory) -> None:
    config = dataclasses.replace(
        isolated_stack_config(tmp_path, EXTERNAL_BOOTSTRAP), access_archive=access_archive(tmp_path_factory)
    )
    run = uuid.uuid4().hex[:8]
    first = purchase(run, 0)
    stream = [purchase(run, i) for i in range(1, MID_STREAM + 1)]
    orders = [body["purchase"]["order_id"] for body in (first, *stream)]
    posts: Counter[str] = Counter()

    # Given a stack that accepted and sent a notification, and accepted more that may still be in flight
    with LocalStack(config, progress=lambda line: None) as stack:
        assert stack.info is not None
        api = stack.info.api_url
        status, headers, accepted = post(api, first)
        assert status == 202, accepted
        assert "Idempotent-Replayed" not in headers
        sent = eventually(lambda: states(api, first["id"]).get("slack", {}).get("state") == "sent", timeout=60)
        assert sent, states(api, first["id"])
        assert [post(api, body)[0] for body in stream] == [202] * MID_STREAM
        # When the stack stops mid-stream (as Ctrl-C stops `make run`)
        posts.update(slack_posts(stack, orders))

    # And starts again on the same data dir
    with LocalStack(config, progress=lambda line: None) as stack:
        assert stack.info is not None
        api = stack.info.api_url
        # Then GET still shows the status written before the restart
        assert states(api, first["id"])["slack"]["state"] == "sent"

        # And the client's retry with the same key is answered as a replay of the first 202
        status, headers, replayed = post(api, first)
        assert status == 202, replayed
        assert headers.get("Idempotent-Replayed") == "true", dict(headers)
        assert replayed == accepted

        # And every notification accepted before the stop is sent, each exactly once across both runs
        def all_sent() -> bool:
            return all(states(api, body["id"]).get("slack", {}).get("state") == "sent" for body in stream)

        assert eventually(all_sent, timeout=90), {b["id"]: states(api, b["id"]) for b in stream}
        posts.update(slack_posts(stack, orders))
        assert posts == Counter(dict.fromkeys(orders, 1)), posts
