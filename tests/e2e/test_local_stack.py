"""The local stack over HTTP: a purchase posted to the API is delivered on every channel, exactly once.

The stack is the one ``python -m devstack up`` runs (real Kafka broker, moto server, local Slack and webhook
receivers, every function in its own process behind local API Gateway / Kafka event-source mappings).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devstack.demo import run_demo
from devstack.tail import follow
from notifications.registry import Channel
from tests.support import caller_id, sample_request

pytestmark = pytest.mark.e2e

ALL_CHANNELS = [channel.value for channel in Channel]


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One JSON request over HTTP; HTTP error statuses are answers too."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def eventually(probe: Callable[[], Any], timeout: float = 60.0) -> Any:
    """``probe()`` once it answers something truthy, or its last answer after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def states(api: str, notification_id: str) -> dict[str, dict[str, Any]]:
    status, body = call("GET", f"{api}/v1/notifications/{notification_id}")
    return {c["channel"]: c for c in body["channels"]} if status == 200 else {}


def all_sent(api: str, notification_id: str, channels: list[str]) -> dict[str, dict[str, Any]] | None:
    """Every channel handed to its provider (email and SMS may have the provider's delivery report already)."""
    found = states(api, notification_id)
    handed = all(c["state"] in ("sent", "delivered") for c in found.values())
    return found if set(found) == set(channels) and handed else None


def local_ses_messages(stack) -> list[dict[str, Any]]:
    """Every email the local SES received (devstack.providers read API)."""
    with urllib.request.urlopen(f"{stack.info.ses_url}/_local/ses/messages", timeout=30) as response:
        messages: list[dict[str, Any]] = json.loads(response.read())["messages"]
    return messages


def moto_data(stack) -> dict[str, Any]:
    with urllib.request.urlopen(f"{stack.info.aws_endpoint}/moto-api/data.json", timeout=30) as response:
        return json.loads(response.read())


def test_every_channel_of_the_template_has_a_running_sender(local_stack):
    # The channel modules of the shared package and the template's sender functions all run locally
    assert sorted(local_stack.info.channels) == sorted(ALL_CHANNELS)
    assert {"IngestFunction", "FanoutFunction"} <= set(local_stack.workers)


def test_the_env_vars_file_points_every_function_at_the_running_stack(local_stack):
    # What `sam local invoke --env-vars` and `python -m devstack.runtime invoke` read (docs/deploy.md)
    content = json.loads((local_stack.data_dir / "env-vars.json").read_text())
    assert set(content) >= {"IngestFunction", "FanoutFunction", "EmailSenderFunction"}
    for function, variables in content.items():
        # each function with its own Kafka user on the SASL listener (its ACLs from its role)
        assert variables["KAFKA_BOOTSTRAP_SERVERS"] == local_stack.broker.sasl_bootstrap
        assert variables["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert variables["KAFKA_SASL_SECRET_ARN"] == local_stack.permissions.kafka_secrets[function]
        assert variables["AWS_ENDPOINT_URL"] == local_stack.info.aws_endpoint
        assert variables["AWS_ENDPOINT_URL_SESV2"] == local_stack.info.ses_url
        assert "DEVSTACK_PERMISSIONS" not in variables  # the guard is the local stack's, not the function's


def test_a_purchase_is_delivered_on_every_channel_it_asks_for(local_stack):
    api = local_stack.info.api_url
    # Given a purchase asking for every channel, for a customer whose app is on one of the stack's push endpoints
    body = sample_request(channels=ALL_CHANNELS)
    body["customer"]["push_endpoint"] = local_stack.info.push_endpoints[0]
    nid, order_id = body["id"], body["purchase"]["order_id"]

    # When the shop posts it over HTTP
    status, accepted = call(
        "POST", f"{api}/v1/notifications", body, {"Idempotency-Key": nid, "x-correlation-id": f"e2e-{nid}"}
    )

    # Then it is accepted for exactly those channels
    assert status == 202, accepted
    assert accepted["id"] == nid
    assert sorted(accepted["channels"]) == sorted(ALL_CHANNELS)

    # And GET eventually shows every channel sent, with the provider's message id where there is one
    channels = eventually(lambda: all_sent(api, nid, ALL_CHANNELS))
    assert channels, states(api, nid)
    assert all(c["attempts"] >= 1 for c in channels.values())

    # And the local SES holds the email to the customer, SNS (moto) the SMS to the customer's phone, with those ids
    emails = [m for m in local_ses_messages(local_stack) if m["message_id"] == channels["email"]["provider_message_id"]]
    assert len(emails) == 1
    assert emails[0]["to"] == ["ada@example.com"]
    assert order_id in emails[0]["text"] and order_id in emails[0]["html"]
    data = moto_data(local_stack)
    sms = [m for m in data["sns"]["SMS"] if m["message_id"] == channels["sms"]["provider_message_id"]]
    assert len(sms) == 1
    assert sms[0]["phone_number"] == "+4915112345678"

    # And the Slack and webhook receivers each got exactly one accepted request for it, the webhook signed
    slack = [d for d in local_stack.slack.accepted("/slack/local-shop") if order_id in d.body.decode()]
    assert len(slack) == 1
    hooks = [d for d in local_stack.webhook.accepted("/webhook/local-shop") if d.json().get("notification_id") == nid]
    assert len(hooks) == 1
    assert hooks[0].signature_ok is True


@pytest.mark.usefixtures("delivery_viewer")
def test_a_push_reaches_the_customer_app_endpoint_and_shows_in_get_and_the_viewer(local_stack):
    api = local_stack.info.api_url
    # Given a purchase asking for push, the customer's app on the stack's APNs sandbox endpoint
    endpoint = next(arn for arn in local_stack.info.push_endpoints if "/APNS_SANDBOX/" in arn)
    body = sample_request(channels=["push"], locale="de")
    body["customer"]["push_endpoint"] = endpoint
    nid, order_id = body["id"], body["purchase"]["order_id"]

    # When the shop posts it
    status, accepted = call("POST", f"{api}/v1/notifications", body, {"Idempotency-Key": nid})

    # Then it is accepted for push, and GET eventually shows it sent with SNS's message id
    assert status == 202, accepted
    assert accepted["channels"] == ["push"]
    channels = eventually(lambda: all_sent(api, nid, ["push"]))
    assert channels, states(api, nid)
    message_id = channels["push"]["provider_message_id"]

    # And SNS (moto) kept exactly that message with the endpoint: an APNs alert in German
    [published] = [
        e["messages"][message_id] for e in moto_data(local_stack)["sns"]["PlatformEndpoint"] if e["arn"] == endpoint
    ]
    alert = json.loads(json.loads(published)["APNS_SANDBOX"])["aps"]["alert"]
    assert alert["title"] == f"Bestellung {order_id} bestätigt"

    # And the viewer's page of the notification shows what SNS took
    url = f"{local_stack.info.viewer_url.rstrip('/')}/notification?key={caller_id()}/{nid}"

    def viewer_page() -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                page = response.read().decode()
        except urllib.error.HTTPError:
            return None
        return page if "SNS mobile push (moto server)" in page else None

    page = eventually(viewer_page)
    assert page, url
    assert message_id in page and endpoint in page and f"Bestellung {order_id} bestätigt" in page


def test_a_client_retry_is_answered_again_and_not_delivered_twice(local_stack):
    api = local_stack.info.api_url
    # Given an accepted and delivered Slack notification
    body = sample_request(channels=["slack"])
    nid, order_id = body["id"], body["purchase"]["order_id"]
    first = call("POST", f"{api}/v1/notifications", body, {"Idempotency-Key": nid})
    assert first[0] == 202
    assert eventually(lambda: all_sent(api, nid, ["slack"]))

    # When the shop sends the same request again with the same key
    again = call("POST", f"{api}/v1/notifications", body, {"Idempotency-Key": nid})

    # Then it gets the first answer again, and Slack still got one message for the order
    assert again == first
    time.sleep(3)  # two batching windows: a second send, if any, would have happened by now
    assert len([d for d in local_stack.slack.accepted("/slack/local-shop") if order_id in d.body.decode()]) == 1


def test_an_unknown_notification_is_404_and_a_bad_body_is_a_field_error(local_stack):
    api = local_stack.info.api_url
    status, answer = call("GET", f"{api}/v1/notifications/{uuid.uuid4()}")
    assert status == 404, answer
    status, answer = call("POST", f"{api}/v1/notifications", {"id": "not-a-uuid"})
    assert status in (400, 422), answer


def test_a_killed_sender_is_replaced_and_its_records_are_still_delivered(local_stack):
    api = local_stack.info.api_url
    # Given the SMS sender's process is killed (SIGKILL, no clean shutdown)
    killed = local_stack.kill_function("SmsSenderFunction")

    # When a purchase asks for SMS
    body = sample_request(channels=["sms"])
    assert call("POST", f"{api}/v1/notifications", body, {"Idempotency-Key": body["id"]})[0] == 202

    # Then a new execution environment takes over and the SMS is sent once
    assert eventually(lambda: all_sent(api, body["id"], ["sms"]), timeout=90), states(api, body["id"])
    assert local_stack.workers["SmsSenderFunction"].proc.pid != killed
    sent = [m for m in moto_data(local_stack)["sns"]["SMS"] if body["purchase"]["order_id"] in m["message"]]
    assert len(sent) == 1


def test_tail_prints_one_line_per_delivery_and_per_dead_letter(local_stack):
    api = local_stack.info.api_url
    lines: list[str] = []
    stop = threading.Event()
    follower = threading.Thread(
        target=follow,
        args=(local_stack.info.bootstrap, Path(local_stack.info.logs_dir)),
        kwargs={"out": lines.append, "stop": stop},
        daemon=True,
    )
    follower.start()
    try:
        assert eventually(lambda: any(line.startswith("tail:") for line in lines), timeout=30)
        # Given the webhook receiver rejects the next request for good (HTTP 400 is permanent)
        local_stack.webhook.fail_next(1, status=400)

        # When a purchase asks for email and the webhook
        body = sample_request(channels=["email", "webhook"])
        nid = body["id"]
        assert call("POST", f"{api}/v1/notifications", body, {"Idempotency-Key": nid})[0] == 202

        # Then tail shows the email as delivered and the webhook message as a dead letter, naming the reason
        def mine():
            found = [line for line in lines if nid in line]
            return found if len(found) >= 2 else None

        found = eventually(mine)
    finally:
        stop.set()
        follower.join(timeout=30)
    assert found, lines
    assert any(" delivered  email " in line for line in found), found
    dead = [line for line in found if " dead " in line]
    assert len(dead) == 1, found
    assert "from notifications.webhook-" in dead[0]
    assert "by sender-webhook" in dead[0]
    assert "400" in dead[0]
    assert states(api, nid)["webhook"]["state"] == "failed"


def test_the_demo_posts_purchases_and_reports_them_delivered(local_stack):
    out: list[str] = []
    results = run_demo(local_stack.info.api_url, ["email", "slack"], count=2, out=out.append)
    assert [r.status for r in results] == [202, 202]
    assert all(r.delivered for r in results), out
    assert any("client retry" in line and "nothing sent twice" in line for line in out), out
