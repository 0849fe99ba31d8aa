"""Configuration: one pydantic model per role, validated once per execution environment.

Domain code receives a settings object; only the factories here read ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from notifications.errors import ConfigurationError
from notifications.models import Channel


class _EnvModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        source = os.environ if env is None else env
        # Field names are the upper-case environment variable names.
        values = {name: source[name.upper()] for name in cls.model_fields if source.get(name.upper())}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid {cls.__name__}: {exc}") from exc


class KafkaSettings(_EnvModel):
    kafka_bootstrap_servers: str
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["AWS_MSK_IAM", "SCRAM-SHA-512"] | None = None
    # Self-managed Kafka with SASL/SCRAM: a Secrets Manager secret {"username": ..., "password": ...}.
    kafka_sasl_secret_arn: str | None = None
    # Upper bound for one publish: metadata wait plus every acknowledgement.
    kafka_send_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    topic_requested: str = "notifications.requested"
    topic_prefix: str = "notifications."
    topic_dlq: str = "notifications.dlq"

    @model_validator(mode="after")
    def _sasl_needs_mechanism(self) -> Self:
        if self.kafka_security_protocol == "SASL_SSL" and self.kafka_sasl_mechanism is None:
            raise ValueError("KAFKA_SASL_MECHANISM is required with SASL_SSL")
        if self.kafka_sasl_mechanism == "SCRAM-SHA-512" and not self.kafka_sasl_secret_arn:
            raise ValueError("KAFKA_SASL_SECRET_ARN is required with SCRAM-SHA-512")
        return self

    def channel_topic(self, channel: Channel) -> str:
        return f"{self.topic_prefix}{channel.value}"


class IngestSettings(KafkaSettings):
    status_table_name: str
    idempotency_table_name: str
    idempotency_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    retry_after_seconds: int = Field(default=5, gt=0)


class FanoutSettings(KafkaSettings):
    status_table_name: str | None = None


class SenderSettings(KafkaSettings):
    channel: Channel
    status_table_name: str
    idempotency_table_name: str
    idempotency_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    provider_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    # Transient provider errors are retried inside the invocation this many times in all, with a short backoff,
    # before the record is reported failed: a reported failure makes the event-source mapping redeliver the
    # record and every later record of its partition.
    provider_attempts: int = Field(default=3, ge=1, le=10)
    provider_backoff_seconds: float = Field(default=0.05, ge=0, le=5)
    email_from_address: str | None = None
    ses_configuration_set: str | None = None
    slack_webhook_secret_id: str | None = None
    webhook_secret_id: str | None = None
    sms_sender_id: str | None = None
    # Longer SMS texts are cut (with an ellipsis) to at most this many concatenated parts.
    sms_max_parts: int = Field(default=3, ge=1, le=10)

    @model_validator(mode="after")
    def _channel_is_configured(self) -> Self:
        required = {
            Channel.EMAIL: "email_from_address",
            Channel.SLACK: "slack_webhook_secret_id",
            Channel.WEBHOOK: "webhook_secret_id",
        }.get(self.channel)
        if required and not getattr(self, required):
            raise ValueError(f"{required.upper()} is required for channel {self.channel.value}")
        return self


@cache
def ingest_settings() -> IngestSettings:
    return IngestSettings.from_env()


@cache
def fanout_settings() -> FanoutSettings:
    return FanoutSettings.from_env()


@cache
def sender_settings() -> SenderSettings:
    return SenderSettings.from_env()
