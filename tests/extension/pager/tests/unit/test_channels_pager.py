"""The pager sender: the page it posts, and how the service's answers are classified."""

from __future__ import annotations

import json

import pytest

from notifications.channels import http
from notifications.channels.pager.sender import PagerSender, PagerTarget
from notifications.channels.secret import CachedSecret
from notifications.contracts.envelopes import channel_messages
from notifications.errors import PermanentDeliveryError, TransientDeliveryError
from notifications.registry import Channel
from tests.channel_support import requested, sender_settings

SECRET = {"url": "https://pager.example/pages", "token": "t0ken"}


class Secrets:
    def get(self, name, max_age=None, transform=None, force_fetch=False):
        return SECRET


def sender(answers):
    posted = []

    def post(url, body, headers, **options):
        posted.append((url, json.loads(body), headers))
        answer = answers.pop(0)
        http.raise_for_status("pager", answer)
        return answer

    target = CachedSecret(Secrets(), "pager", PagerTarget)
    return PagerSender(sender_settings(Channel("pager")), target, post), posted


def message():
    envelope = requested(channels=["pager"], customer={"id": "c-1", "name": "Ada", "pager_id": "P123456"})
    return channel_messages(envelope)[0]


def test_a_page_names_the_pager_and_the_order_and_carries_the_token():
    pager, posted = sender([http.HttpAnswer(202, {"x-page-id": "pg-1"})])
    receipt = pager.send(message())
    [(url, body, headers)] = posted
    assert url == SECRET["url"]
    assert body["pager_id"] == "P123456"
    assert body["summary"].startswith("Order ") and " paid: " in body["summary"]
    assert headers == {"Authorization": "Bearer t0ken"}
    assert receipt.provider_message_id == "pg-1"


def test_a_refusal_is_permanent_and_an_outage_transient():
    with pytest.raises(PermanentDeliveryError):
        sender([http.HttpAnswer(400), http.HttpAnswer(400)])[0].send(message())
    with pytest.raises(TransientDeliveryError):
        sender([http.HttpAnswer(503)])[0].send(message())
