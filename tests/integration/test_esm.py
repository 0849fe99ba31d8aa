"""The event-source mapping against the real broker, with a tiny in-test function standing in for a Lambda.

Each test gets its own topics and consumer group; the mapping runs in a thread until what the test waits for
happened (or a generous deadline passed), then the test checks invocations, committed offsets and the DLQ.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError

from devstack.broker import ensure_topics
from devstack.consume import read_topic
from devstack.esm import KafkaEventSourceMapping
from devstack.template_config import KafkaTrigger
from notifications.dead_letters import read_dead_letters
from notifications.kafka.msk_event import KafkaRecord, read_event
from notifications.kafka.producer import KafkaPublisher
from notifications.settings import KafkaSettings
from tests.on_failure_example import documented_example, shape

Respond = Callable[[list[KafkaRecord], int], object]


class Function:
    """A Lambda stand-in: records every batch it got and answers what ``respond`` says (or raises)."""

    def __init__(self, respond: Respond = lambda records, call: {"batchItemFailures": []}) -> None:
        self.respond = respond
        self.batches: list[list[KafkaRecord]] = []
        self.lock = threading.Lock()

    def __call__(self, event, context):
        records = read_event(event)
        with self.lock:
            self.batches.append(records)
            call = len(self.batches)
        answer = self.respond(records, call)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def offsets(self, partition: int = 0) -> list[list[int]]:
        with self.lock:
            return [[r.offset for r in batch if r.partition == partition] for batch in self.batches]

    def seen(self) -> list[KafkaRecord]:
        with self.lock:
            return [r for batch in self.batches for r in batch]


def failing(*offsets: int, times: int = 1, partition: int = 0) -> Respond:
    """Report the given offsets as failed during the first ``times`` invocations."""

    def respond(records: list[KafkaRecord], call: int) -> object:
        failed = [r for r in records if r.partition == partition and r.offset in offsets] if call <= times else []
        return {
            "batchItemFailures": [{"itemIdentifier": {"partition": r.partition_id, "offset": r.offset}} for r in failed]
        }

    return respond


@pytest.fixture
def topics(kafka_bootstrap) -> tuple[str, str]:
    name = f"esm-test-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, {name: 2, f"{name}.dlq": 1})
    return name, f"{name}.dlq"


@pytest.fixture
def producer(kafka_bootstrap) -> Iterator[KafkaProducer]:
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap.split(","), acks="all")
    yield producer
    producer.close()


def produce(producer: KafkaProducer, topic: str, partition: int, count: int, timestamp_ms: int | None = None) -> None:
    for i in range(count):
        producer.send(
            topic,
            value=f"p{partition}-{i}".encode(),
            key=f"k{i}".encode(),
            partition=partition,
            headers=[("correlation-id", f"c-{i}".encode())],
            timestamp_ms=timestamp_ms,
        ).get(timeout=10)


def trigger(topic: str, dlq: str, **settings) -> KafkaTrigger:
    defaults = {
        "name": "TestTrigger",
        "function": "TestFunction",
        "topics": (topic,),
        "consumer_group_id": f"{topic}-group",
        "batch_size": 10,
        "batching_window_seconds": 0.3,
        "report_batch_item_failures": True,
        "maximum_retry_attempts": 3,
        "on_failure_destination": f"kafka://{dlq}",
    }
    return KafkaTrigger(**{**defaults, **settings})


class Running:
    """A mapping running in a thread."""

    def __init__(self, bootstrap: str, mapping_trigger: KafkaTrigger, function: Function) -> None:
        self.publisher = KafkaPublisher(KafkaSettings(kafka_bootstrap_servers=bootstrap))
        self.mapping = KafkaEventSourceMapping(
            mapping_trigger, function, bootstrap=bootstrap, destination=self.publisher, backoff=lambda failures: 0.0
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.mapping.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        self.publisher.close()
        assert not self.thread.is_alive()


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


_ADMINS: dict[str, KafkaAdminClient] = {}


def committed(bootstrap: str, group: str) -> dict[int, int]:
    """The group's committed offsets per partition."""
    admin = _ADMINS.get(bootstrap)
    if admin is None:
        admin = _ADMINS[bootstrap] = KafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    except KafkaError:  # e.g. the coordinator of a fresh broker is not up yet
        return {}
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


@pytest.fixture(scope="module", autouse=True)
def _close_admins() -> Iterator[None]:
    yield
    for admin in _ADMINS.values():
        admin.close()
    _ADMINS.clear()


def test_a_partition_resumes_from_the_lowest_failed_offset_and_later_records_are_redelivered(
    kafka_bootstrap, topics, producer
):
    # Given six records on partition 0 and a function that reports offsets 4 and 2 as failed once
    topic, dlq = topics
    produce(producer, topic, 0, 6)
    function = Function(failing(4, 2))
    mapping_trigger = trigger(topic, dlq)

    # When the mapping runs until the partition is committed to the end
    with Running(kafka_bootstrap, mapping_trigger, function):
        wait_until(lambda: committed(kafka_bootstrap, mapping_trigger.consumer_group_id).get(0) == 6)

    # Then the second invocation started at 2 and carried 3..5 again, in order, and everything is committed
    assert function.offsets() == [[0, 1, 2, 3, 4, 5], [2, 3, 4, 5]]
    assert committed(kafka_bootstrap, mapping_trigger.consumer_group_id)[0] == 6
    assert read_topic(kafka_bootstrap, dlq, until=lambda found: False, timeout=1) == []


def test_a_raised_error_retries_the_whole_batch(kafka_bootstrap, topics, producer):
    # Given three records and a function that raises on its first invocation
    topic, dlq = topics
    produce(producer, topic, 1, 3)

    def respond(records, call):
        return RuntimeError("provider down") if call == 1 else {"batchItemFailures": []}

    function = Function(respond)
    mapping_trigger = trigger(topic, dlq)

    # When the mapping runs
    with Running(kafka_bootstrap, mapping_trigger, function):
        wait_until(lambda: committed(kafka_bootstrap, mapping_trigger.consumer_group_id).get(1) == 3)

    # Then the same three records came twice, and nothing was dead-lettered
    assert function.offsets(partition=1) == [[0, 1, 2], [0, 1, 2]]
    assert read_topic(kafka_bootstrap, dlq, until=lambda found: False, timeout=1) == []


def test_an_invalid_identifier_fails_the_whole_batch(kafka_bootstrap, topics, producer):
    # Given two records and a function that first names an offset that was not in the batch
    topic, dlq = topics
    produce(producer, topic, 0, 2)

    def respond(records, call):
        if call == 1:
            return {"batchItemFailures": [{"itemIdentifier": {"partition": f"{topic}-0", "offset": 999}}]}
        return {"batchItemFailures": []}

    function = Function(respond)
    mapping_trigger = trigger(topic, dlq)

    # When the mapping runs
    with Running(kafka_bootstrap, mapping_trigger, function):
        wait_until(lambda: committed(kafka_bootstrap, mapping_trigger.consumer_group_id).get(0) == 2)

    # Then the whole batch was delivered again
    assert function.offsets() == [[0, 1], [0, 1]]


def test_exhausted_retries_go_to_the_kafka_destination_with_their_origin_and_the_partition_moves_on(
    kafka_bootstrap, topics, producer
):
    # Given four records where offset 1 always fails, two retries allowed
    topic, dlq = topics
    produce(producer, topic, 0, 4)
    function = Function(failing(1, times=10**6))
    mapping_trigger = trigger(topic, dlq, maximum_retry_attempts=2)

    # When the mapping runs until the partition is done
    with Running(kafka_bootstrap, mapping_trigger, function) as running:
        wait_until(lambda: committed(kafka_bootstrap, mapping_trigger.consumer_group_id).get(0) == 4)
        dead = read_topic(kafka_bootstrap, dlq, until=lambda found: len(found) >= 1)

    # Then the first attempt and two retries ran, and exactly the failing record is on the DLQ in AWS's
    # on-failure record format (kafka-on-failure-destination.html): keyed like the original, the condition and
    # invocation count in requestContext, the record as it was (headers included) in the payload
    assert function.offsets() == [[0, 1, 2, 3], [1, 2, 3], [1, 2, 3]]
    assert (running.mapping.stats.invocations, running.mapping.stats.dead_letters) == (3, 1)
    assert len(dead) == 1
    assert (dead[0].key, dead[0].headers) == (b"k1", ())
    document = json.loads(dead[0].value)
    assert document["requestContext"]["condition"] == "RetriesExhausted"
    assert document["requestContext"]["approximateInvokeCount"] == 3
    assert document["requestContext"]["functionArn"].endswith(":function:TestFunction:$LATEST")
    # The function answered (batchItemFailures), so no functionError: see devstack.on_failure
    assert document["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert document["KafkaBatchInfo"]["recordInfo"]["offset"] == "1"
    [letter] = read_dead_letters(dead[0])
    assert letter.source == f"{topic}/0/1"
    assert letter.original is not None
    assert (letter.original.key, letter.original.value) == (b"k1", b"p0-1")
    assert letter.original.header("correlation-id") == b"c-1"
    assert letter.stage == "esm-TestFunction"


def test_the_emulators_on_failure_record_matches_awss_documented_example_field_for_field(
    kafka_bootstrap, topics, producer
):
    # Given a record whose function raises every time, one retry allowed (AWS's example is a function error)
    topic, dlq = topics
    produce(producer, topic, 0, 1)
    function = Function(lambda records, call: RuntimeError("provider down"))
    mapping_trigger = trigger(topic, dlq, maximum_retry_attempts=1)

    # When the mapping gives up on it
    with Running(kafka_bootstrap, mapping_trigger, function):
        wait_until(lambda: committed(kafka_bootstrap, mapping_trigger.consumer_group_id).get(0) == 1)
        [dead] = read_topic(kafka_bootstrap, dlq, until=lambda found: len(found) >= 1)

    # Then what landed on the destination topic has the documented keys with the documented value types
    document = json.loads(dead.value)
    assert shape(document) == shape(documented_example())
    assert document["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert (document["requestContext"]["approximateInvokeCount"], document["KafkaBatchInfo"]["batchSize"]) == (2, 1)
    assert document["KafkaBatchInfo"]["bootstrapServers"] == kafka_bootstrap


def test_records_older_than_the_maximum_age_skip_the_function(kafka_bootstrap, topics, producer):
    # Given two records written two hours ago and one written now, and a maximum record age of one hour
    topic, dlq = topics
    produce(producer, topic, 0, 2, timestamp_ms=int(time.time() * 1000) - 2 * 3600 * 1000)
    produce(producer, topic, 0, 1)
    function = Function()
    mapping_trigger = trigger(topic, dlq, maximum_record_age_seconds=3600)

    # When the mapping runs
    with Running(kafka_bootstrap, mapping_trigger, function):
        wait_until(lambda: committed(kafka_bootstrap, mapping_trigger.consumer_group_id).get(0) == 3)
        dead = read_topic(kafka_bootstrap, dlq, until=lambda found: len(found) >= 2)

    # Then the function only saw the fresh record, and the old ones are on the DLQ as on-failure records saying
    # they were too old, never invoked
    assert [r.offset for r in function.seen()] == [2]
    letters = [letter for record in dead for letter in read_dead_letters(record)]
    assert sorted(letter.source for letter in letters) == [f"{topic}/0/0", f"{topic}/0/1"]
    assert {letter.condition for letter in letters} == {"RecordAgeExceeded"}
    assert all(json.loads(d.value)["responseContext"] is None for d in dead)


def test_a_new_mapping_in_the_same_group_resumes_from_committed_offsets(kafka_bootstrap, topics, producer):
    # Given a mapping that handled three records and stopped
    topic, dlq = topics
    produce(producer, topic, 0, 3)
    mapping_trigger = trigger(topic, dlq)
    first = Function()
    with Running(kafka_bootstrap, mapping_trigger, first):
        wait_until(lambda: committed(kafka_bootstrap, mapping_trigger.consumer_group_id).get(0) == 3)

    # When two more records arrive and a new mapping of the same group starts
    produce(producer, topic, 0, 2)
    second = Function()
    with Running(kafka_bootstrap, mapping_trigger, second):
        wait_until(lambda: committed(kafka_bootstrap, mapping_trigger.consumer_group_id).get(0) == 5)

    # Then the new one got only the two new records
    assert [r.offset for r in first.seen()] == [0, 1, 2]
    assert [r.offset for r in second.seen()] == [3, 4]


def test_each_partition_keeps_its_order_and_batches_respect_the_batch_size(kafka_bootstrap, topics, producer):
    # Given 25 records on each of two partitions and a batch size of 10
    topic, dlq = topics
    produce(producer, topic, 0, 25)
    produce(producer, topic, 1, 25)
    function = Function()
    mapping_trigger = trigger(topic, dlq, batch_size=10)

    # When the mapping drains both partitions
    with Running(kafka_bootstrap, mapping_trigger, function):
        wait_until(lambda: committed(kafka_bootstrap, mapping_trigger.consumer_group_id) == {0: 25, 1: 25})

    # Then no batch exceeded 10 records and each partition arrived once, in offset order
    assert all(len(batch) <= 10 for batch in function.batches)
    for partition in (0, 1):
        assert [r.offset for r in function.seen() if r.partition == partition] == list(range(25))
