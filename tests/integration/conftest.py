from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.broker import KafkaBroker, ensure_topics, wait_until_ready
from devstack.topics import TOPIC_CONFIGS, TOPICS
from tests.support import reset_runtime

# Read at import, before the autouse fixture points the functions at a placeholder.
EXTERNAL_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka broker: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else one started for this test session."""
    given = EXTERNAL_BOOTSTRAP
    if given:
        wait_until_ready(given, timeout=60)
        ensure_topics(given, TOPICS, configs=TOPIC_CONFIGS)
        yield given
        return
    broker = KafkaBroker(Path(tmp_path_factory.mktemp("kafka")))
    bootstrap = broker.start(timeout=120)
    try:
        ensure_topics(bootstrap, TOPICS, configs=TOPIC_CONFIGS)
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture
def kafka_env(kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the functions at the real broker."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("KAFKA_SEND_TIMEOUT_SECONDS", "10")
    reset_runtime()
    return kafka_bootstrap


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]
