from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from devstack import aws_resources
from devstack.broker import KafkaBroker, ensure_topics, wait_until_ready
from devstack.runtime.toolchain import runtime_python
from devstack.topics import TOPIC_CONFIGS, TOPICS
from tests.support import reset_runtime

ROOT = Path(__file__).resolve().parents[1]

# Read at import, before the autouse fixture points the functions at a placeholder.
EXTERNAL_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka broker shared by every suite: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else one for the session."""
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


def pytest_report_header() -> str:
    """Which Python the runtime suite runs the functions on (loud when it is not Lambda's)."""
    python = runtime_python()
    return python.warning or f"Lambda runtime emulation: Python {python.version} ({python.path})"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts with fake AWS credentials, the local function environment and no cached runtime."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name, value in aws_resources.function_environment("127.0.0.1:1").items():
        monkeypatch.setenv(name, value)
    reset_runtime()
    yield
    reset_runtime()


@pytest.fixture
def moto_aws() -> Iterator[boto3.Session]:
    """In-process moto with the project's tables, SES identity and secrets."""
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        aws_resources.create_all(session)
        yield session
