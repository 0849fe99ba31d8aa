"""The publisher recovers from a broker restart that happens while records are in flight."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from devstack.broker import KafkaBroker, ensure_topics
from notifications.kafka.producer import KafkaPublisher, OutgoingRecord
from notifications.settings import KafkaSettings


def test_publishing_succeeds_again_after_a_broker_restart_mid_flight(tmp_path: Path):
    broker = KafkaBroker(tmp_path / "kafka")
    bootstrap = broker.start(timeout=120)
    try:
        ensure_topics(bootstrap, {"recovery": 3})
        publisher = KafkaPublisher(KafkaSettings(kafka_bootstrap_servers=bootstrap, kafka_send_timeout_seconds=3))
        batch = [OutgoingRecord(topic="recovery", key=str(i).encode(), value=b"x" * 200) for i in range(50)]
        assert publisher.publish_all(batch) == [None] * 50

        # Given records in flight when the broker is killed and started again
        outcomes: list[list[Exception | None]] = []
        stop = threading.Event()

        def keep_publishing() -> None:
            while not stop.is_set():
                outcomes.append(publisher.publish_all(batch))

        worker = threading.Thread(target=keep_publishing)
        worker.start()
        time.sleep(1)
        broker.kill()
        time.sleep(2)
        broker.start(timeout=120)
        time.sleep(2)
        stop.set()
        worker.join(timeout=60)

        # Then publishing fails while it is down, and succeeds again within a few attempts after it is back
        assert any(any(result) for result in outcomes), "the outage should have been noticed"
        recovered = [publisher.publish_all(batch) for _ in range(5)]
        assert recovered[-1] == [None] * 50, recovered[-1][:3]
        publisher.close()
    finally:
        broker.stop()
