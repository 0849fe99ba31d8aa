"""Configuration: one pydantic model per role, validated once per execution environment.

Domain code receives a settings object; only the factories here read ``os.environ``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, Literal, Self

from pydantic import Field, create_model, field_validator, model_validator

from notifications.contracts.fields import CallerId
from notifications.env import EnvModel
from notifications.registry import Channel, address_kinds


class KafkaSettings(EnvModel):
    kafka_bootstrap_servers: str
    # SASL_PLAINTEXT: a self-managed cluster's SASL listener without TLS (inside a private network only).
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
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
        if self.kafka_security_protocol.startswith("SASL_") and self.kafka_sasl_mechanism is None:
            raise ValueError(f"KAFKA_SASL_MECHANISM is required with {self.kafka_security_protocol}")
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
    # Quotas (``notifications.quotas``), counted in this table: new notifications per caller per second and per
    # UTC day. Per recipient (messages per hour to one address, whoever the caller): ``recipient_quotas``.
    quota_table_name: str
    quota_caller_per_second: int = Field(default=50, gt=0)
    quota_caller_per_day: int = Field(default=100_000, gt=0)


class FanoutSettings(KafkaSettings):
    """The fanout only reads and writes Kafka."""


class SenderSettings(KafkaSettings):
    channel: Channel
    status_table_name: str
    provider_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    # Transient provider errors are retried inside the invocation this many times in all, with a short backoff,
    # before the record is reported failed: a reported failure makes the event-source mapping redeliver the
    # record and every later record of its partition.
    provider_attempts: int = Field(default=3, ge=1, le=10)
    provider_backoff_seconds: float = Field(default=0.05, ge=0, le=5)
    # The channel's sending rate, all invocations together (0: unlimited). Each partition gets an equal share,
    # so this needs the topic's partition count (the ``TopicPartitions`` template parameter).
    send_rate_per_second: float = Field(default=0, ge=0)
    topic_partitions: int = Field(default=3, ge=1)
    # Records of one batch in flight at once (one lane per notification), each still taking a rate slot.
    send_concurrency: int = Field(default=32, ge=1, le=256)
    # After this many transient failures in a row the provider counts as down: calls stop and records wait.
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_open_seconds: float = Field(default=2.0, gt=0)
    circuit_max_open_seconds: float = Field(default=60.0, gt=0)
    # A deferred record is tried again after base * 2^attempt seconds, at most max.
    retry_base_delay_seconds: float = Field(default=1.0, gt=0)
    retry_max_delay_seconds: float = Field(default=60.0, gt=0)
    # How long a record may keep failing transiently (e.g. a provider outage) before it is dead-lettered.
    outage_budget_seconds: int = Field(default=6 * 3600, gt=0)
    # A fair share of the rate between callers (``notifications.fair_share``): when more records wait than a
    # partition can send within the horizon, an invocation hands out only the horizon's slots, by caller, and the
    # records over their caller's share go back on the topic. 0 turns the share off (records wait for slots).
    fair_share_horizon_seconds: float = Field(default=2.0, ge=0, le=60)
    # How far back a caller's slots count towards its share, and how long it counts as active after its last record.
    fair_share_window_seconds: float = Field(default=30.0, gt=0, le=3600)
    # A caller's weight in the share (1 when absent), a JSON object: CALLER_WEIGHTS='{"c-...": 2}'.
    caller_weights: dict[CallerId, Annotated[float, Field(gt=0, le=1000)]] = Field(default_factory=dict)

    @field_validator("caller_weights", mode="before")
    @classmethod
    def _weights_from_json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @property
    def partition_rate(self) -> float | None:
        """This partition's share of the channel's rate."""
        return self.send_rate_per_second / self.topic_partitions if self.send_rate_per_second else None


def recipient_quotas(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """Messages per hour to one address, per customer address field: ``QUOTA_<FIELD>_PER_HOUR``, or the default its
    channel's address kind declares."""
    kinds = address_kinds()
    fields = {f"quota_{field}_per_hour": (int, Field(default=kind.per_hour, gt=0)) for field, kind in kinds.items()}
    model = create_model("RecipientQuotas", __base__=EnvModel, **fields)  # type: ignore[call-overload]
    limits = model.from_env(env)
    return {field: getattr(limits, f"quota_{field}_per_hour") for field in kinds}


@cache
def ingest_settings() -> IngestSettings:
    return IngestSettings.from_env()


@cache
def fanout_settings() -> FanoutSettings:
    return FanoutSettings.from_env()


@cache
def sender_settings() -> SenderSettings:
    return SenderSettings.from_env()
