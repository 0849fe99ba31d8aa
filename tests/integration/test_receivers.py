"""The local receivers stand in for Slack and webhook consumers: a repeated Idempotency-Key is not a new delivery."""

from __future__ import annotations

import urllib.request

from devstack.receivers import DeliveryReceiver


def post(url: str, key: str) -> int:
    request = urllib.request.Request(url, data=b"{}", method="POST", headers={"Idempotency-Key": key})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


def test_receiver_counts_a_repeated_idempotency_key_as_a_replay_not_a_delivery():
    with DeliveryReceiver() as receiver:
        url = receiver.url("/webhook")
        assert [post(url, "k-1"), post(url, "k-1"), post(url, "k-2")] == [200, 200, 200]
        assert [d.headers["idempotency-key"] for d in receiver.accepted()] == ["k-1", "k-2"]
        assert [d.headers["idempotency-key"] for d in receiver.replays()] == ["k-1"]
