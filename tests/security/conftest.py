from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import pytest

from devstack.stack import LocalStack
from tests.support import isolated_stack_config

# Low limits, so that a test reaches them in a few requests; each test uses callers and phone numbers of its own.
QUOTA_ENVIRONMENT = {"QUOTA_CALLER_PER_DAY": "6", "QUOTA_PHONE_PER_HOUR": "2", "QUOTA_EMAIL_PER_HOUR": "2"}

# Read at import, before the autouse fixture points the functions at a placeholder.
EXTERNAL_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture(scope="package")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The whole local stack, as in tests/e2e, with the ingest's quotas lowered; one for the whole package, started
    by the first test that needs it (the unit tests here do not)."""
    config = dataclasses.replace(
        isolated_stack_config(tmp_path_factory.mktemp("devstack-security"), EXTERNAL_BOOTSTRAP),
        overrides={"IngestFunction": QUOTA_ENVIRONMENT},
    )
    stack = LocalStack(config, progress=lambda line: None)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
