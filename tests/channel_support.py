"""Helpers for the channel and delivery tests: channel messages, sender settings, Kafka records."""

from __future__ import annotations

from typing import Any

from devstack import aws_resources
from devstack.apigw import LOCAL_CALLER
from notifications import channels
from notifications.channels.base import ChannelSender
from notifications.contracts.api import NotificationRequest
from notifications.contracts.envelopes import ChannelMessage, NotificationRequested, channel_messages
from notifications.env import EnvModel
from notifications.kafka.msk_event import KafkaRecord
from notifications.registry import Channel, address_of, spec
from notifications.settings import SenderSettings
from tests.support import SAMPLE_REQUEST, sample_request

CLUSTER_ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/notifications/abcd1234-0000-0000-0000-000000000000-1"


def requested(*, caller: str | None = None, **changes: Any) -> NotificationRequested:
    """The fanout input for a sample request (every channel unless ``channels`` is given; v1 without a ``caller``);
    unless ``customer`` is given, the sample customer has an address (its kind's example) for each channel that
    delivers to one."""
    changes.setdefault("channels", [c.value for c in Channel])
    if "customer" not in changes:
        kinds = [kind for name in changes["channels"] if (kind := address_of(Channel(name)))]
        changes["customer"] = {**{k.field: k.example for k in kinds}, **SAMPLE_REQUEST["customer"]}
    request = NotificationRequest.model_validate(sample_request(**changes))
    return NotificationRequested(
        caller=caller,
        notification_id=request.id,
        correlation_id="corr-test",
        accepted_at="2026-11-21T10:00:01Z",
        channels=request.requested_channels(),
        locale=request.locale,
        purchase=request.purchase,
        customer=request.customer,
    )


LOCAL_SHOP = aws_resources.shop_caller_id(LOCAL_CALLER)
_OWN = object()


def channel_message(channel: Channel, *, caller: Any = _OWN, **changes: Any) -> ChannelMessage:
    """The message fanout produces for ``channel`` from a sample request changed by ``changes``. A channel that
    delivers to the caller's own destination (Slack, webhook) belongs to the local shop unless ``caller`` is given;
    the others are v1 (no caller) unless it is."""
    if caller is _OWN:
        caller = LOCAL_SHOP if address_of(channel) is None else None
    return channel_messages(requested(caller=caller, channels=[channel.value], **changes))[0]


def sender_environment(channel: Channel, **env: str) -> dict[str, str]:
    """The local function environment for the sender of ``channel``, with ``env`` on top."""
    return {**aws_resources.function_environment("127.0.0.1:1"), "CHANNEL": channel.value, **env}


def sender_settings(channel: Channel, **env: str) -> SenderSettings:
    return SenderSettings.from_env(sender_environment(channel, **env))


def channel_settings(channel: Channel, **env: str) -> EnvModel:
    """The settings the channel's own package declares, read from the sender's local environment."""
    return spec(channel).settings.from_env(sender_environment(channel, **env))


def build_sender(channel: Channel, **env: str) -> ChannelSender:
    """The channel's sender as its function builds it (provider clients included)."""
    values = sender_environment(channel, **env)
    return channels.create_sender(SenderSettings.from_env(values), values)


def kafka_record(topic: str, offset: int, value: bytes, *, key: bytes | None = b"k", partition: int = 0) -> KafkaRecord:
    return KafkaRecord(
        topic=topic, partition=partition, offset=offset, timestamp=1_790_000_000_000, key=key, value=value
    )


def message_record(
    message: ChannelMessage, offset: int, *, partition: int = 0, headers: tuple[tuple[str, bytes], ...] = ()
) -> KafkaRecord:
    """The record fanout writes for ``message`` on its channel topic."""
    return KafkaRecord(
        topic=f"notifications.{message.channel.value}",
        partition=partition,
        offset=offset,
        timestamp=1_790_000_000_000,
        key=str(message.notification_id).encode(),
        value=message.to_json(),
        headers=headers,
    )


# The HTTP channels' split, as the integration tests drive it through a real socket.
PERMANENT_STATUSES = [400, 401, 403, 404, 410, 413, 422, 302]
TRANSIENT_STATUSES = [408, 429, 500, 502, 503, 504]
