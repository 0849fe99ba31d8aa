from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from devstack import aws_resources
from tests.support import reset_runtime

ROOT = Path(__file__).resolve().parents[1]


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
