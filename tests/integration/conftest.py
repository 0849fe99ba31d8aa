from __future__ import annotations

import uuid

import pytest

from tests.support import reset_runtime


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
