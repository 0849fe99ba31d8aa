"""Talking to a running Kafka cluster (the local broker or any other): wait until it serves, create topics."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.errors import for_code as _kafka_error_for_code

from devstack.broker_fetch import BrokerError, BrokerTimeoutError

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
HOST = "127.0.0.1"


def _parse_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    addresses: list[tuple[str, int]] = []
    for raw in bootstrap.split(","):
        item = raw.strip()
        if not item:
            continue
        if "://" in item:  # tolerate PLAINTEXT://host:port
            item = item.split("://", 1)[1]
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"bad bootstrap address {raw!r} (expected host:port)")
        addresses.append((host.strip("[]") or HOST, int(port)))
    if not addresses:
        raise ValueError("empty bootstrap server list")
    return addresses


def _tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _remaining_ms(deadline: float, minimum: int = 100) -> int:
    return max(minimum, int((deadline - time.monotonic()) * 1000))


def _admin(bootstrap: str, deadline: float) -> Any:
    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="devstack",
            bootstrap_timeout_ms=_remaining_ms(deadline, 1000),
            request_timeout_ms=min(10_000, _remaining_ms(deadline, 1000)),
        )
    except KafkaError as exc:
        raise BrokerTimeoutError(f"cannot bootstrap from {bootstrap}: {exc}") from exc


def wait_until_ready(bootstrap: str, timeout: float = 60.0, check_alive: Callable[[], None] = lambda: None) -> None:
    """Block until the cluster at ``bootstrap`` answers a metadata request with a broker.

    Raises :class:`BrokerTimeoutError` after ``timeout`` seconds; ``check_alive`` is called while waiting and may
    raise to give up early (the broker process died).
    """
    deadline = time.monotonic() + timeout
    addresses = _parse_bootstrap(bootstrap)
    # Cheap TCP gate first: a failed KafkaAdminClient construction leaks its IO thread.
    while not any(_tcp_open(host, port) for host, port in addresses):
        check_alive()
        if time.monotonic() >= deadline:
            raise BrokerTimeoutError(f"nothing is listening on {bootstrap}")
        time.sleep(0.1)
    check_alive()
    admin = _admin(bootstrap, deadline)
    try:
        last_error = "no brokers in metadata"
        while True:
            try:
                cluster = admin.describe_cluster()
                if cluster.get("brokers"):
                    return
            except KafkaError as exc:
                last_error = repr(exc)
            check_alive()
            if time.monotonic() >= deadline:
                raise BrokerTimeoutError(f"{bootstrap} did not answer a metadata request in time: {last_error}")
            time.sleep(0.2)
    finally:
        admin.close()


def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    replication_factor: int = 1,
    timeout: float = 30.0,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create the missing topics (``name -> partitions``, with ``configs[name]`` such as ``retention.ms``); existing
    ones are left as is.

    Returns once every topic is in the metadata with a leader for each partition.
    """
    if not topics:
        return
    for name, partitions in topics.items():
        if partitions < 1:
            raise ValueError(f"topic {name!r}: partitions must be >= 1, got {partitions}")
    deadline = time.monotonic() + timeout
    wait_until_ready(bootstrap, timeout)
    admin = _admin(bootstrap, deadline)
    try:
        request = {
            name: {
                "num_partitions": partitions,
                "replication_factor": replication_factor,
                "configs": dict((configs or {}).get(name, {})),
            }
            for name, partitions in topics.items()
        }
        try:
            result = admin.create_topics(request, timeout_ms=_remaining_ms(deadline, 1000), raise_errors=False)
        except KafkaError as exc:
            raise BrokerError(f"CreateTopics on {bootstrap} failed: {exc!r}") from exc
        for topic in result.get("topics", []):
            code = topic.get("error_code", 0)
            if code not in (0, TopicAlreadyExistsError.errno):
                raise BrokerError(
                    f"creating topic {topic.get('name')!r} failed: "
                    f"{_kafka_error_for_code(code).__name__}: {topic.get('error_message')}"
                )
        try:
            admin.wait_for_topics(list(topics), timeout_ms=_remaining_ms(deadline, 1000))
        except KafkaError as exc:
            raise BrokerTimeoutError(f"topics not ready on {bootstrap}: {exc}") from exc
    finally:
        admin.close()
