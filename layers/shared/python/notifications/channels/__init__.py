"""Delivery channels as plugins: each module registers one ``ChannelSender`` factory in ``REGISTRY``."""

from __future__ import annotations

from notifications.channels.base import REGISTRY, ChannelSender, Receipt, channel_sender

__all__ = ["REGISTRY", "ChannelSender", "Receipt", "channel_sender"]
