"""Durable publishing: acks=all, idempotent producer, every send future checked against one deadline.

``flush()`` alone proves nothing (it returns even when a batch expired), so each future is inspected.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from notifications.errors import BrokerUnavailableError
from notifications.settings import KafkaSettings


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class Publisher(Protocol):
    """Port: publish records and say, per record, whether the broker acknowledged it."""

    def publish_all(self, records: Sequence[OutgoingRecord]) -> list[Exception | None]:
        """One entry per record, in order: None when acknowledged, else the error."""
        ...


def publish_one(publisher: Publisher, record: OutgoingRecord) -> None:
    """Publish a single record or raise ``BrokerUnavailableError``."""
    error = publisher.publish_all([record])[0]
    if error is not None:
        raise BrokerUnavailableError(f"{type(error).__name__}: {error}") from error


def producer_config(settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python producer settings for durable, ordered, non-duplicating sends within the deadline."""
    deadline_ms = int(settings.kafka_send_timeout_seconds * 1000)
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "client_id": "purchase-notifications",
        "acks": "all",
        "enable_idempotence": True,
        "max_in_flight_requests_per_connection": 5,
        "linger_ms": 2,
        "max_block_ms": deadline_ms,
        "request_timeout_ms": max(1000, deadline_ms // 2),
        "delivery_timeout_ms": deadline_ms,
        "bootstrap_timeout_ms": deadline_ms,
        "allow_auto_create_topics": False,
        "reconnect_backoff_max_ms": 1000,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        # kafka-python signs AWS_MSK_IAM with botocore's default credential chain (the function's role).
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism
    if settings.kafka_sasl_mechanism == "SCRAM-SHA-512" and settings.kafka_sasl_secret_arn:
        username, password = scram_credentials(settings.kafka_sasl_secret_arn)
        config["sasl_plain_username"] = username
        config["sasl_plain_password"] = password
    return config


def scram_credentials(secret_arn: str) -> tuple[str, str]:
    """Username and password from a SASL/SCRAM secret (the JSON shape MSK and Lambda use)."""
    from notifications import aws  # noqa: PLC0415 - only self-managed clusters need Secrets Manager

    secret = json.loads(aws.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"])
    return str(secret["username"]), str(secret["password"])


class KafkaPublisher:
    """Publisher on one long-lived kafka-python producer, created on first use and rebuilt after a failed start."""

    def __init__(self, settings: KafkaSettings, factory: Callable[..., Any] | None = None) -> None:
        self._settings = settings
        self._factory = factory
        self._producer: Any = None
        self._lock = threading.Lock()  # senders publish from several threads; they share one producer

    def _get_producer(self) -> Any:
        with self._lock:
            if self._producer is None:
                factory = self._factory
                if factory is None:
                    from kafka import KafkaProducer  # noqa: PLC0415 - imported on first use to keep cold start short

                    factory = KafkaProducer
                self._producer = factory(**producer_config(self._settings))
            return self._producer

    def publish_all(self, records: Sequence[OutgoingRecord]) -> list[Exception | None]:
        if not records:
            return []
        deadline = time.monotonic() + self._settings.kafka_send_timeout_seconds
        try:
            producer = self._get_producer()
        except Exception as exc:
            return [exc] * len(records)  # no producer yet: the next call tries again
        futures: list[Any] = []
        first_error: Exception | None = None
        for record in records:
            if first_error is not None:
                # After a send blocked until max_block_ms, do not block again for every remaining record.
                futures.append(first_error)
                continue
            try:
                futures.append(
                    producer.send(record.topic, value=record.value, key=record.key, headers=list(record.headers))
                )
            except Exception as exc:
                first_error = exc
                futures.append(exc)
        results: list[Exception | None] = []
        for future in futures:
            if isinstance(future, Exception):
                results.append(future)
                continue
            try:
                future.get(timeout=max(0.0, deadline - time.monotonic()))
                results.append(None)
            except Exception as exc:
                results.append(exc)
        if any(results):
            # A producer that missed its deadline may never recover by itself (an idempotent producer whose
            # batches expired during a broker restart keeps waiting on their sequence numbers): start afresh.
            self._discard()
        return results

    def _discard(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            # It is being thrown away and its records were reported failed: a failing close changes nothing.
            with contextlib.suppress(Exception):
                producer.close(timeout=0)

    def close(self, timeout: float = 5.0) -> None:
        if self._producer is not None:
            self._producer.close(timeout=timeout)
            self._producer = None
