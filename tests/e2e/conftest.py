from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devstack.stack import LocalStack
from tests.support import isolated_stack_config

# Read at import, before the autouse fixture points the functions at a placeholder.
EXTERNAL_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture(scope="package")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The whole local stack (``python -m devstack up`` without the CLI) on free ports in a fresh data dir.

    Package-scoped: it runs while tests/e2e runs, and is stopped before the other suites.
    """
    config = isolated_stack_config(tmp_path_factory.mktemp("devstack"), EXTERNAL_BOOTSTRAP)
    lines: list[str] = []
    stack = LocalStack(config, progress=lines.append)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
