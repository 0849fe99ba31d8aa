from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devstack.stack import LocalStack, StackConfig

# Read at import, before the autouse fixture points the functions at a placeholder.
EXTERNAL_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture(scope="package")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The whole local stack (``python -m devstack up`` without the CLI) on free ports in a fresh data dir.

    Package-scoped: it runs while tests/e2e runs, and is stopped before the other suites.
    """
    config = StackConfig(
        data_dir=tmp_path_factory.mktemp("devstack"),
        api_port=0,
        broker_port=0,
        moto_port=0,
        slack_port=0,
        webhook_port=0,
        bootstrap=EXTERNAL_BOOTSTRAP,
        retry_backoff_seconds=0.1,
    )
    lines: list[str] = []
    stack = LocalStack(config, progress=lines.append)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
