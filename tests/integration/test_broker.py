"""Real Apache Kafka (KRaft) broker from devstack/broker.py -- no mocks, no skips.

Needs Java 17+ (and Maven on first run to fetch the jars); if either is missing
these tests fail with MissingToolError naming the tool.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from devstack.broker import (
    REPO_ROOT,
    BrokerError,
    KafkaBroker,
    MissingToolError,
    ensure_topics,
    wait_until_ready,
)
from devstack.ports import free_port

pytestmark = pytest.mark.integration


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=5)
    try:
        for key, value in records:
            metadata = producer.send(topic, key=key, value=value).get(timeout=30)
            assert metadata.topic == topic
            assert metadata.offset >= 0
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


def _read_all(bootstrap: str, topic: str, partitions: int = 1) -> list[tuple[bytes, bytes]]:
    """Every record in ``topic`` (no consumer group: assign + seek to beginning)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[tuple[bytes, bytes]] = []
        positions = {tp: consumer.position(tp) for tp in tps}
        while any(positions[tp] < end[tp] for tp in tps):
            batch = consumer.poll(timeout_ms=5000, max_records=500)
            assert batch, f"no records returned while positions {positions} < end {end}"
            for tp_records in batch.values():
                out.extend((r.key, r.value) for r in tp_records)
            positions = {tp: consumer.position(tp) for tp in tps}
        return out
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    with KafkaBroker(tmp_path_factory.mktemp("kafka-shared")) as running:
        yield running


def test_produce_acks_all_and_read_back(broker: KafkaBroker) -> None:
    assert broker.is_running()
    assert broker.bootstrap == f"127.0.0.1:{broker.port}"
    topic = f"purchases-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap, {topic: 1})

    records = [(b"order-1", b'{"amount": 10}'), (b"order-2", b'{"amount": 20}')]
    _produce(broker.bootstrap, topic, records)

    assert _read_all(broker.bootstrap, topic) == records


def test_auto_create_topics_is_disabled(broker: KafkaBroker) -> None:
    topic = f"never-created-{uuid.uuid4().hex[:8]}"
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    try:
        consumer.partitions_for_topic(topic)  # metadata request for an unknown topic
    finally:
        consumer.close()
    with KafkaAdminClient(bootstrap_servers=broker.bootstrap) as admin:
        assert topic not in admin.list_topics()


def test_ensure_topics_is_idempotent(broker: KafkaBroker) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = {f"fanout-{suffix}": 3, f"dlq-{suffix}": 1}

    ensure_topics(broker.bootstrap, topics)
    ensure_topics(broker.bootstrap, topics)  # all exist already: no error
    ensure_topics(broker.bootstrap, {**topics, f"extra-{suffix}": 2})  # partly existing

    with KafkaAdminClient(bootstrap_servers=broker.bootstrap) as admin:
        described = {t["name"]: t for t in admin.describe_topics([*topics, f"extra-{suffix}"])}
    assert {name: len(t["partitions"]) for name, t in described.items()} == {
        **topics,
        f"extra-{suffix}": 2,
    }
    for topic in described.values():
        assert all(p["leader_id"] >= 0 for p in topic["partitions"])


def test_ensure_topics_rejects_impossible_replication_factor(broker: KafkaBroker) -> None:
    with pytest.raises(BrokerError, match=r"INVALID_REPLICATION_FACTOR|InvalidReplicationFactor"):
        ensure_topics(broker.bootstrap, {f"rf3-{uuid.uuid4().hex[:8]}": 1}, replication_factor=3)


def test_data_survives_stop_start_and_kill(tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    topic = "durable"
    first = KafkaBroker(data_dir)
    bootstrap = first.start()
    try:
        ensure_topics(bootstrap, {topic: 1})
        _produce(bootstrap, topic, [(b"k1", b"before-restart")])

        # Clean stop, then a *new* instance on the same data dir: same port, no re-format.
        first.stop()
        assert not first.is_running()
        meta = (data_dir / "kraft" / "meta.properties").read_text()
        second = KafkaBroker(data_dir)
        assert second.start() == bootstrap
        assert (data_dir / "kraft" / "meta.properties").read_text() == meta
        assert _read_all(bootstrap, topic) == [(b"k1", b"before-restart")]

        # Chaos: SIGKILL, then restart; acked records are still there.
        _produce(bootstrap, topic, [(b"k2", b"before-kill")])
        second.kill()
        assert not second.is_running()
        assert second.start() == bootstrap
        assert _read_all(bootstrap, topic) == [(b"k1", b"before-restart"), (b"k2", b"before-kill")]

        assert second.restart() == bootstrap
        wait_until_ready(bootstrap, timeout=10)
    finally:
        KafkaBroker(data_dir).stop()  # stops whichever instance is running (via the pid file)
    assert not KafkaBroker(data_dir).is_running()
    assert not (data_dir / "broker.pid").exists()


def test_a_restart_on_another_client_port_keeps_the_functions_listener(tmp_path: Path) -> None:
    # Given a broker that ran once and stopped (the stack moves it to a free port when its own port is taken)
    data_dir = tmp_path / "kafka"
    first = KafkaBroker(data_dir)
    old_bootstrap = first.start()
    sasl_bootstrap = first.sasl_bootstrap
    first.stop()

    # When it starts again on another client port
    moved = KafkaBroker(data_dir, port=free_port(exclude=[first.port, first.controller_port]))
    try:
        bootstrap = moved.start()

        # Then it serves there, and the functions' SASL listener is where it was
        assert bootstrap == f"127.0.0.1:{moved.port}" != old_bootstrap
        assert moved.sasl_bootstrap == sasl_bootstrap
    finally:
        moved.stop()


def test_cli_start_status_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "cli-kafka"
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devstack.broker", *args, "--data-dir", str(data_dir)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    started = cli("start")
    try:
        assert started.returncode == 0, started.stderr
        bootstrap = started.stdout.strip()
        assert bootstrap.startswith("127.0.0.1:")
        # The CLI process has exited; the broker keeps running on its own (daemonized).
        wait_until_ready(bootstrap, timeout=10)
        status = cli("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert bootstrap in status.stdout
        again = cli("start")  # idempotent: already running -> same address
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == bootstrap
    finally:
        stopped = cli("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert cli("status").returncode == 3


def test_cli_start_with_external_cluster_only_waits(broker: KafkaBroker, tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap}
    result = subprocess.run(
        [sys.executable, "-m", "devstack.broker", "start", "--data-dir", str(tmp_path / "unused")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == broker.bootstrap
    assert not (tmp_path / "unused").exists()


def test_missing_java_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(MissingToolError, match="java") as excinfo:
        KafkaBroker(tmp_path / "kafka").start()
    assert excinfo.value.tool == "java"
