"""Chaos tooling: injected provider faults."""

from __future__ import annotations

import random

import pytest

from devstack.faults import FaultySender
from notifications.channels.base import Receipt
from notifications.errors import TransientDeliveryError
from notifications.registry import Channel


class Recording:
    channel = Channel.EMAIL

    def __init__(self) -> None:
        self.calls = 0

    def send(self, message):
        self.calls += 1
        return Receipt(provider_message_id=str(self.calls))


def test_faulty_sender_fails_about_the_rate_and_never_calls_the_provider_when_it_fails():
    inner = Recording()
    sender = FaultySender(inner, 0.3, random.Random(7))
    failures = 0
    for _ in range(2000):
        try:
            sender.send(None)  # type: ignore[arg-type]
        except TransientDeliveryError:
            failures += 1
    assert failures == sender.injected
    assert 0.25 < failures / 2000 < 0.35
    assert inner.calls == 2000 - failures


@pytest.mark.parametrize("rate", ["0", "1", ""])
def test_no_fault_injection_unless_a_rate_between_0_and_1_is_set(rate, monkeypatch):
    from devstack.faults import install_from_env

    monkeypatch.setenv("DEVSTACK_PROVIDER_FAULT_RATE", rate)
    assert install_from_env() == 0.0
