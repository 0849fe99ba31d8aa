"""The ingest function's service with its clients, built on first use and kept for the execution environment."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from notifications.destinations import DestinationSettings, SecretsManagerDirectory
from notifications.ingest import IdempotentIngest, build_ingest
from notifications.kafka.producer import KafkaPublisher
from notifications.ledger import DynamoLedger
from notifications.quotas import DynamoCounterStore, QuotaLimits, Quotas
from notifications.settings import IngestSettings, ingest_settings, recipient_quotas
from notifications.status import DynamoStatusView, StatusTable

# Ingest publishes one record per request and waits for its acknowledgement: lingering for a batch that never
# grows only adds latency (``linger_ms`` is a pure delay here), so its producer sends at once.
PRODUCER_OVERRIDES: dict[str, Any] = {"linger_ms": 0}


def ingest_producer(**config: Any) -> Any:
    """The Kafka producer ingest publishes with: the shared durable settings plus ``PRODUCER_OVERRIDES``."""
    from kafka import KafkaProducer  # noqa: PLC0415 - on first use, as in KafkaPublisher

    return KafkaProducer(**{**config, **PRODUCER_OVERRIDES})


def quota_limits(settings: IngestSettings, env: Mapping[str, str] | None = None) -> QuotaLimits:
    """The quotas the settings give; every customer field a channel delivers to has a per-hour limit."""
    return QuotaLimits(
        caller_per_second=settings.quota_caller_per_second,
        caller_per_day=settings.quota_caller_per_day,
        recipient_per_hour=recipient_quotas(env),
    )


@cache
def ingest_runtime() -> IdempotentIngest:
    # botocore is imported here, on first use, to keep the handler cheap to import.
    from notifications import aws  # noqa: PLC0415

    settings = ingest_settings()
    dynamodb = aws.client("dynamodb")
    status = StatusTable(settings.status_table_name, dynamodb)
    return build_ingest(
        settings,
        publisher=KafkaPublisher(settings, factory=ingest_producer),
        status=DynamoStatusView(status),
        quotas=Quotas(DynamoCounterStore(settings.quota_table_name, dynamodb), quota_limits(settings)),
        ledger=DynamoLedger(status, settings.idempotency_table_name, key_ttl_seconds=settings.idempotency_ttl_seconds),
        destinations=SecretsManagerDirectory(
            DestinationSettings.from_env().destination_secret_prefix, aws.client("secretsmanager")
        ),
    )
