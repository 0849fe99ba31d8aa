"""The fanout function's service with its Kafka producer, built on first use and kept for the environment."""

from __future__ import annotations

from functools import cache

from notifications.fanout import FanoutService
from notifications.kafka.producer import KafkaPublisher
from notifications.settings import fanout_settings


@cache
def fanout_runtime() -> FanoutService:
    settings = fanout_settings()
    return FanoutService(settings=settings, publisher=KafkaPublisher(settings))
