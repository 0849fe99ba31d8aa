"""Two shops on the local stack, each with its own Slack channel and webhook endpoint: every delivery lands at its
own caller's destination only, and each webhook verifies with its own caller's key, checked by the reference
implementation of Standard Webhooks (the ``standardwebhooks`` package), not by project code."""

from __future__ import annotations

import urllib.request
import uuid

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from devstack import aws_resources
from tests.e2e.test_local_stack import eventually
from tests.security.callers import call, new_caller
from tests.support import sample_request

pytestmark = pytest.mark.e2e

SHOPS = (aws_resources.LOCAL_CALLER, "other-shop")
CHANNELS = ["slack", "webhook"]


def sent(api: str, shop: str, notification_id: str) -> bool:
    status, _, body = call(api, "GET", f"/v1/notifications/{notification_id}", shop)
    return status == 200 and {c["channel"]: c["state"] for c in body["channels"]} == dict.fromkeys(CHANNELS, "sent")


def test_each_callers_slack_and_webhook_deliveries_land_only_at_its_own_destination(local_stack):
    api = local_stack.info.api_url
    # Given two shops, each with its own Slack and webhook destination, posting one purchase each
    orders = {}
    for shop in SHOPS:
        body = sample_request(channels=CHANNELS)
        status, _, accepted = call(api, "POST", "/v1/notifications", shop, body)
        assert status == 202, accepted
        orders[shop] = (body["id"], body["purchase"]["order_id"])

    # When both are delivered
    for shop, (nid, _) in orders.items():
        assert eventually(lambda shop=shop, nid=nid: sent(api, shop, nid)), shop

    for shop, (nid, order_id) in orders.items():
        other = next(s for s in SHOPS if s != shop)
        # Then each shop's Slack message is at its own path, and nowhere else
        slack = [d for d in local_stack.slack.deliveries() if order_id in d.body.decode()]
        assert [(d.path, d.status) for d in slack] == [(f"/slack/{shop}", 200)]
        # And its webhook too, verified by the reference implementation with the shop's own key only
        hooks = [d for d in local_stack.webhook.deliveries() if d.json().get("notification_id") == nid]
        assert [(d.path, d.status) for d in hooks] == [(f"/webhook/{shop}", 200)]
        [hook] = hooks
        payload = Webhook(aws_resources.LOCAL_SHOPS[shop]).verify(hook.body, hook.headers)
        assert payload["purchase"]["order_id"] == order_id
        with pytest.raises(WebhookVerificationError):
            Webhook(aws_resources.LOCAL_SHOPS[other]).verify(hook.body, hook.headers)


def test_a_caller_without_destinations_is_refused_422_and_nothing_is_sent(local_stack):
    api = local_stack.info.api_url
    # Given a shop nobody set up destinations for
    stranger = new_caller()
    body = sample_request(channels=["email", *CHANNELS])

    # When it asks for email, Slack and the webhook
    status, _, refused = call(api, "POST", "/v1/notifications", stranger, body)

    # Then the answer is 422 on `channels`, naming Slack and the webhook, and nothing was accepted or sent
    assert status == 422, refused
    assert [(d["loc"], d["msg"].split(":")[0]) for d in refused["error"]["details"]] == [
        (["channels"], "channel 'slack'"),
        (["channels"], "channel 'webhook'"),
    ]
    assert call(api, "GET", f"/v1/notifications/{body['id']}", stranger)[0] == 404
    order_id = body["purchase"]["order_id"]
    assert not [d for d in local_stack.slack.deliveries() if order_id in d.body.decode()]


@pytest.mark.usefixtures("delivery_viewer")
def test_the_viewer_shows_what_each_callers_destinations_received(local_stack):
    # Given a Slack message of the other shop delivered
    api = local_stack.info.api_url
    body = sample_request(channels=["slack"], customer={"id": f"c-{uuid.uuid4().hex[:6]}", "name": "Bo"})
    assert call(api, "POST", "/v1/notifications", "other-shop", body)[0] == 202
    assert eventually(
        lambda: any(body["purchase"]["order_id"] in d.body.decode() for d in local_stack.slack.accepted())
    )

    # When the viewer's page is read
    with urllib.request.urlopen(f"{local_stack.info.viewer_url.rstrip('/')}/live", timeout=30) as response:
        page = response.read().decode()

    # Then its per-caller table has a row for that shop's Slack destination, with what it received
    assert 'data-destination="/slack/other-shop"' in page
    row = page.split('data-destination="/slack/other-shop"', 1)[1].split("</tr>", 1)[0]
    caller, channel, _, requests, delivered, refused = (cell.split("</td>")[0] for cell in row.split("<td>")[1:])
    assert (caller, channel) == ("other-shop", "slack")
    assert int(delivered) >= 1 and int(requests) >= int(delivered) + int(refused)
