from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import pytest

from devstack.stack import LocalStack
from tests.support import access_archive, isolated_stack_config

# The webhook sender of the shared stack: at most PRESSURE_RATE sends per second, outages timed in seconds.
PRESSURE_RATE = 40
PRESSURE_ENVIRONMENT = {
    "SEND_RATE_PER_SECOND": str(PRESSURE_RATE),
    "TOPIC_PARTITIONS": "3",
    "CIRCUIT_OPEN_SECONDS": "0.5",
    "CIRCUIT_MAX_OPEN_SECONDS": "2",
    "RETRY_BASE_DELAY_SECONDS": "0.2",
    "RETRY_MAX_DELAY_SECONDS": "2",
}

# The Slack sender of the shared stack: a rate low enough beside what the local API accepts that a burst of one shop
# queues up (test_fair_share.py), high enough that the other tests' Slack messages do not wait.
SHARE_RATE = 10

# Read at import, before the autouse fixture points the functions at a placeholder.
EXTERNAL_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture(scope="package")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The whole local stack (``python -m devstack up`` without the CLI) on free ports in a fresh data dir.

    Package-scoped: it runs while tests/e2e runs, and is stopped before the other suites.
    """
    config = dataclasses.replace(
        isolated_stack_config(tmp_path_factory.mktemp("devstack"), EXTERNAL_BOOTSTRAP),
        # Delivery under pressure (test_delivery_pressure.py) on the webhook channel: its sender at a known rate,
        # and outage timings scaled from minutes down to seconds; the trigger's own retries back off 0.1 s, doubling
        # to at most 0.2 s, so they alone would give up within a few seconds.
        retry_backoff_cap_seconds=0.2,
        overrides={
            "WebhookSenderFunction": PRESSURE_ENVIRONMENT,
            "SlackSenderFunction": {"SEND_RATE_PER_SECOND": str(SHARE_RATE), "TOPIC_PARTITIONS": "3"},
        },
        access_archive=access_archive(tmp_path_factory),
    )
    lines: list[str] = []
    stack = LocalStack(config, progress=lines.append)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="package")
def delivery_viewer(local_stack: LocalStack) -> str:
    """The delivery viewer on the shared stack, which does not start it (an optional part), for the tests that look
    at it: started when the first of them runs (it reads Kafka from the beginning), stopped with the stack.
    Answers its address (``local_stack.info.viewer_url``)."""
    return local_stack.start_viewer()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The least-privilege check runs after every other e2e test (it judges what they made the functions do)."""
    slots = [i for i, item in enumerate(items) if "tests/e2e/" in str(item.path).replace("\\", "/")]
    ordered = sorted((items[i] for i in slots), key=lambda item: item.path.name == "test_least_privilege.py")
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item
