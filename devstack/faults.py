"""Fault injection for chaos runs of the local stack: providers that fail a fraction of calls transiently.

``DEVSTACK_PROVIDER_FAULT_RATE=0.3`` makes a sender's provider fail 30 % of its calls with a transient error
before the call is made (so an injected failure never delivers anything); ``DEVSTACK_PROVIDER_FAULT_CHANNELS``
limits that to some channels. Slack and webhook failures can also
come from the receivers themselves (``DeliveryReceiver.fail_fraction``); this covers SES and SNS, which moto
does not fail on demand. Off unless the variable is set; only the local stack's function worker installs it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

from notifications.channels.base import ChannelSender, Receipt
from notifications.contracts.envelopes import ChannelMessage
from notifications.errors import TransientDeliveryError
from notifications.settings import SenderSettings

FAULT_RATE_ENV = "DEVSTACK_PROVIDER_FAULT_RATE"
FAULT_CHANNELS_ENV = "DEVSTACK_PROVIDER_FAULT_CHANNELS"  # comma-separated; every channel when unset


class FaultySender:
    """A ChannelSender that fails a fraction of calls transiently and passes the others to the real one."""

    def __init__(self, inner: ChannelSender, rate: float, rng: random.Random | None = None) -> None:
        self.channel = inner.channel
        self._inner = inner
        self._rate = rate
        self._rng = rng or random.Random()  # noqa: S311 - fault injection, not cryptography
        self.injected = 0

    def send(self, message: ChannelMessage) -> Receipt:
        if self._rng.random() < self._rate:
            self.injected += 1
            raise TransientDeliveryError("injected provider fault", provider_code="chaos")
        return self._inner.send(message)


def install_from_env() -> float:
    """Wrap the sender's channel in a FaultySender when ``DEVSTACK_PROVIDER_FAULT_RATE`` is set; answer the rate."""
    rate = float(os.environ.get(FAULT_RATE_ENV) or 0)
    faulty_channels = {c.strip() for c in os.environ.get(FAULT_CHANNELS_ENV, "").split(",") if c.strip()}
    if not 0 < rate < 1 or (faulty_channels and os.environ.get("CHANNEL") not in faulty_channels):
        return 0.0
    from notifications import channels  # noqa: PLC0415

    real = channels.create_sender

    def faulty(settings: SenderSettings, env: Mapping[str, str] | None = None) -> ChannelSender:
        return FaultySender(real(settings, env), rate)

    channels.create_sender = faulty
    return rate
