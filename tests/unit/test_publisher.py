"""KafkaPublisher: every future checked against one deadline; a producer that failed is replaced."""

from __future__ import annotations

from notifications.kafka.producer import KafkaPublisher, OutgoingRecord
from notifications.settings import KafkaSettings


class FakeFuture:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get(self, timeout: float) -> None:
        if self.error:
            raise self.error


class FakeProducer:
    created = 0

    def __init__(self, **config) -> None:
        FakeProducer.created += 1
        self.config = config
        self.closed = False
        self.fail = False

    def send(self, topic, value, key, headers):
        return FakeFuture(TimeoutError("no ack") if self.fail else None)

    def close(self, timeout):
        self.closed = True


def test_a_producer_that_missed_an_acknowledgement_is_replaced():
    FakeProducer.created = 0
    producers: list[FakeProducer] = []

    def factory(**config):
        producers.append(FakeProducer(**config))
        return producers[-1]

    publisher = KafkaPublisher(KafkaSettings(kafka_bootstrap_servers="127.0.0.1:1"), factory=factory)
    record = OutgoingRecord(topic="t", key=b"k", value=b"v")

    # Given a working producer
    assert publisher.publish_all([record]) == [None]
    assert publisher.publish_all([record]) == [None]
    assert len(producers) == 1

    # When an acknowledgement does not come
    producers[0].fail = True
    [error] = publisher.publish_all([record])

    # Then the failure is reported, the producer closed, and the next publish uses a fresh one
    assert isinstance(error, TimeoutError)
    assert producers[0].closed
    assert publisher.publish_all([record]) == [None]
    assert len(producers) == 2
    assert producers[1].config["acks"] == "all"
