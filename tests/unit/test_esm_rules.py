"""The event-source mapping's rules, pinned one by one against what the Lambda guide says for Kafka triggers.

The rules are pure: a polled batch and the function's outcome in, what to commit / seek / dead-letter out. A tiny
in-memory topic (``FakeTopic``) applies decisions the way the Kafka runner does, to show redelivery over rounds.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable, Sequence

import pytest

from devstack.esm import (
    BatchPlan,
    DeadLetter,
    Decision,
    FunctionError,
    FunctionResult,
    InvalidResponse,
    MappingState,
    Outcome,
    RetryPosition,
    Rules,
    await_topic_metadata,
    decide,
    invoke,
    plan_batch,
    read_response,
    retry_delay,
)
from devstack.template_config import KafkaTrigger, TemplateError, load_template
from notifications.kafka.msk_event import KafkaRecord, read_event

TOPIC = "notifications.email"
NOW_MS = 1_800_000_000_000
PARTIAL = Rules(report_batch_item_failures=True, maximum_retry_attempts=2)


def rec(offset: int, partition: int = 0, topic: str = TOPIC, timestamp: int = NOW_MS) -> KafkaRecord:
    return KafkaRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=timestamp,
        key=f"k{offset}".encode(),
        value=f"v{partition}-{offset}".encode(),
    )


def failures(*items: tuple[int, int] | tuple[int, int, str]) -> FunctionResult:
    """A batchItemFailures response naming (partition, offset[, topic]) items."""
    return FunctionResult(
        {
            "batchItemFailures": [
                {"itemIdentifier": {"partition": f"{item[2] if len(item) > 2 else TOPIC}-{item[0]}", "offset": item[1]}}
                for item in items
            ]
        }
    )


def handled(
    rules: Rules, records: Sequence[KafkaRecord], outcome: Outcome | None, state: MappingState | None = None
) -> Decision:
    return decide(rules, state or MappingState(), BatchPlan(invoke=tuple(records)), outcome)


class FakeTopic:
    """Partitions of records with a committed offset and a read position per partition, like a consumer group."""

    def __init__(self, records: Sequence[KafkaRecord]) -> None:
        self.records = {}
        for record in records:
            self.records.setdefault((record.topic, record.partition), []).append(record)
        self.committed = {p: group[0].offset for p, group in self.records.items()}
        self.position = dict(self.committed)

    def poll(self, limit: int) -> list[KafkaRecord]:
        batch: list[KafkaRecord] = []
        for partition, group in self.records.items():
            pending = [r for r in group if r.offset >= self.position[partition]][: limit - len(batch)]
            batch.extend(pending)
            if pending:
                self.position[partition] = pending[-1].offset + 1
        return batch

    def apply(self, decision: Decision) -> None:
        for partition, offset in decision.commit.items():
            assert offset >= self.committed[partition], "a commit never goes backwards"
            self.committed[partition] = offset
        self.position.update(decision.seek)


def run(
    rules: Rules,
    topic: FakeTopic,
    function: Callable[[list[KafkaRecord]], Outcome],
    batch_size: int = 10,
    rounds: int = 200,
) -> tuple[list[list[int]], list[DeadLetter]]:
    """Poll-invoke-decide until the topic is drained; answers the offsets of every invocation and the DLQ."""
    state, invocations, dead = MappingState(), [], []
    for _ in range(rounds):
        batch = topic.poll(state.batch_limit or batch_size)
        if not batch:
            return invocations, dead
        invocations.append([r.offset for r in batch])
        decision = decide(rules, state, BatchPlan(invoke=tuple(batch)), function(batch))
        dead.extend(decision.dead_letters)
        topic.apply(decision)
        state = decision.state
    raise AssertionError("the mapping never drained the topic")


# --------------------------------------------------------------------------- success


@pytest.mark.parametrize(
    "payload", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}, {"statusCode": 200}]
)
def test_an_empty_or_missing_failure_list_is_success(payload):
    # Given a batch over two partitions
    batch = [rec(40), rec(41), rec(7, partition=1)]

    # When the function answers without failures
    decision = handled(PARTIAL, batch, FunctionResult(payload))

    # Then each partition is committed past its last record and nothing is retried
    assert decision.commit == {(TOPIC, 0): 42, (TOPIC, 1): 8}
    assert decision.seek == {}
    assert decision.dead_letters == ()
    assert decision.error is None


def test_without_report_batch_item_failures_a_failure_list_is_ignored():
    # Given a mapping whose FunctionResponseTypes does not include ReportBatchItemFailures
    rules = Rules(report_batch_item_failures=False)

    # When the function names a failed record anyway
    decision = handled(rules, [rec(40), rec(41)], failures((0, 40)))

    # Then Lambda does not read the response: the batch succeeded
    assert decision.commit == {(TOPIC, 0): 42}
    assert decision.seek == {}


# --------------------------------------------------------------------------- batchItemFailures


def test_a_partition_resumes_from_its_lowest_failed_offset():
    # Given six records of partition 0 and two of partition 1
    batch = [rec(o) for o in range(40, 46)] + [rec(7, partition=1), rec(8, partition=1)]

    # When the function reports 44 and 42 of partition 0 as failed (in any order)
    decision = handled(PARTIAL, batch, failures((0, 44), (0, 42)))

    # Then partition 0 commits only up to 42 and is read again from 42; partition 1 is done
    assert decision.commit == {(TOPIC, 0): 42, (TOPIC, 1): 9}
    assert decision.seek == {(TOPIC, 0): 42}
    assert decision.state.retries == {(TOPIC, 0): RetryPosition(offset=42, failures=1)}
    assert decision.dead_letters == ()


def test_records_after_the_lowest_failure_are_redelivered_even_when_they_succeeded():
    # Given offsets 0..5 where offset 2 fails once
    topic = FakeTopic([rec(o) for o in range(6)])
    seen: set[int] = set()

    def function(batch: list[KafkaRecord]) -> Outcome:
        first_time = [r for r in batch if r.offset == 2 and 2 not in seen]
        seen.update(r.offset for r in batch)
        return failures(*((0, r.offset) for r in first_time))

    # When the mapping drains the topic
    invocations, dead = run(PARTIAL, topic, function)

    # Then the second invocation starts at 2 and carries 3..5 again; everything is committed in the end
    assert invocations == [[0, 1, 2, 3, 4, 5], [2, 3, 4, 5]]
    assert dead == []
    assert topic.committed == {(TOPIC, 0): 6}


def test_a_failure_in_one_partition_does_not_hold_back_another():
    # Given records of partitions 0 and 1 where partition 0's first record keeps failing
    topic = FakeTopic([rec(o) for o in range(3)] + [rec(o, partition=1) for o in range(3)])

    def function(batch: list[KafkaRecord]) -> Outcome:
        return failures(*((0, r.offset) for r in batch if (r.partition, r.offset) == (0, 0)))

    # When the mapping drains the topic with two retries allowed
    invocations, dead = run(PARTIAL, topic, function)

    # Then partition 1 was delivered once, partition 0 was retried twice, then its record was dead-lettered
    assert invocations == [[0, 1, 2, 0, 1, 2], [0, 1, 2], [0, 1, 2]]
    assert [(d.record.partition, d.record.offset) for d in dead] == [(0, 0)]
    assert topic.committed == {(TOPIC, 0): 3, (TOPIC, 1): 3}


# --------------------------------------------------------------------------- function errors


def test_a_raised_error_retries_the_whole_batch_in_every_partition():
    # Given a batch over two partitions
    batch = [rec(40), rec(41), rec(7, partition=1)]

    # When the function raises
    decision = handled(PARTIAL, batch, FunctionError("TimeoutError: provider"))

    # Then nothing new is committed and every partition is read again from its first record of the batch
    assert decision.commit == {(TOPIC, 0): 40, (TOPIC, 1): 7}
    assert decision.seek == {(TOPIC, 0): 40, (TOPIC, 1): 7}
    assert decision.failures == {(TOPIC, 0): 1, (TOPIC, 1): 1}
    assert decision.error == "function error: TimeoutError: provider"


def test_a_raised_error_is_retried_even_without_report_batch_item_failures():
    decision = handled(Rules(), [rec(1), rec(2)], FunctionError("boom"))
    assert decision.seek == {(TOPIC, 0): 1}
    assert decision.commit == {(TOPIC, 0): 1}


# --------------------------------------------------------------------------- invalid identifiers


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (
            {"batchItemFailures": [{"itemIdentifier": {"partition": f"{TOPIC}-9", "offset": 40}}]},
            "partition 'notifications.email-9' is not in the batch",
        ),
        (
            {"batchItemFailures": [{"itemIdentifier": {"partition": f"{TOPIC}-0", "offset": 99}}]},
            "offset 99 of notifications.email-0 is not in the batch",
        ),
        (
            {"batchItemFailures": [{"itemIdentifier": {"partition": "notifications.sms-0", "offset": 40}}]},
            "partition 'notifications.sms-0' is not in the batch",
        ),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, "has no itemIdentifier object"),
        ({"batchItemFailures": [{"itemIdentifier": {}}]}, "has no itemIdentifier object"),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, "has no itemIdentifier object"),
        ({"batchItemFailures": [{"itemId": {"partition": f"{TOPIC}-0", "offset": 40}}]}, "has no itemIdentifier"),
        ({"batchItemFailures": [{"itemIdentifier": {"offset": 40}}]}, "has no partition"),
        ({"batchItemFailures": [{"itemIdentifier": {"partition": f"{TOPIC}-0"}}]}, "has no integer offset"),
        (
            {"batchItemFailures": [{"itemIdentifier": {"partition": f"{TOPIC}-0", "offset": "40"}}]},
            "has no integer offset",
        ),
        (
            {"batchItemFailures": [{"itemIdentifier": {"partition": f"{TOPIC}-0", "offset": True}}]},
            "has no integer offset",
        ),
        ({"batchItemFailures": [None]}, "has no itemIdentifier object"),
        ({"batchItemFailures": {"partition": f"{TOPIC}-0"}}, "batchItemFailures is not a list"),
        ("ok", "response is a JSON str, not an object"),
    ],
)
def test_an_invalid_identifier_fails_the_whole_batch(payload, why):
    # Given a batch of offsets 40..42 on partition 0 and 7 on partition 1
    batch = [rec(40), rec(41), rec(42), rec(7, partition=1)]

    # When the function answers with an identifier Lambda cannot apply
    decision = handled(PARTIAL, batch, FunctionResult(payload))

    # Then the whole batch failed: every partition is retried from its first record, with the reason
    assert decision.seek == {(TOPIC, 0): 40, (TOPIC, 1): 7}
    assert decision.commit == {(TOPIC, 0): 40, (TOPIC, 1): 7}
    assert decision.error is not None
    assert why in decision.error


def test_one_invalid_identifier_among_valid_ones_still_fails_the_whole_batch():
    batch = [rec(40), rec(41), rec(42)]
    decision = handled(PARTIAL, batch, failures((0, 42), (0, 43)))
    assert decision.seek == {(TOPIC, 0): 40}
    assert decision.failures == {(TOPIC, 0): 1}


def test_read_response_names_failed_offsets_per_partition():
    batch = [rec(1), rec(2), rec(5, partition=2)]
    payload = {
        "batchItemFailures": [
            {"itemIdentifier": {"partition": f"{TOPIC}-0", "offset": 2}},
            {"itemIdentifier": {"partition": f"{TOPIC}-2", "offset": 5}},
        ]
    }
    assert read_response(batch, payload) == {(TOPIC, 0): {2}, (TOPIC, 2): {5}}
    assert isinstance(read_response(batch, []), InvalidResponse)


def test_topic_names_with_dashes_are_matched_whole():
    # Given a topic whose name itself ends in "-<digits>"
    batch = [rec(3, topic="orders-2024", partition=1)]

    # When the function names that record
    failed = read_response(
        batch, {"batchItemFailures": [{"itemIdentifier": {"partition": "orders-2024-1", "offset": 3}}]}
    )

    # Then it is understood as partition 1 of orders-2024
    assert failed == {("orders-2024", 1): {3}}


# --------------------------------------------------------------------------- retries and the destination


def test_exhausted_retries_send_the_failed_records_to_the_destination_and_the_partition_moves_on():
    # Given a partition whose record 41 fails every time, two retries allowed
    batch = [rec(40), rec(41), rec(42)]
    state = MappingState()

    # When the first attempt and two retries fail
    decisions = []
    for _ in range(3):
        decision = handled(PARTIAL, batch if not decisions else batch[1:], failures((0, 41)), state)
        decisions.append(decision)
        state = decision.state

    # Then the first two seek back to 41, the third dead-letters 41 and commits past the batch
    assert [d.seek for d in decisions[:2]] == [{(TOPIC, 0): 41}, {(TOPIC, 0): 41}]
    assert [d.failures for d in decisions[:2]] == [{(TOPIC, 0): 1}, {(TOPIC, 0): 2}]
    last = decisions[2]
    assert last.seek == {}
    assert last.commit == {(TOPIC, 0): 43}
    assert [(d.record.offset, d.reason) for d in last.dead_letters] == [
        (41, "reported in batchItemFailures; retries exhausted (2)")
    ]
    assert last.state.retries == {}
    # And its on-failure record says so as AWS does: retries exhausted after three invocations, and no function
    # error, since the function answered (it named the record in batchItemFailures)
    [letter] = last.dead_letters
    assert (letter.condition, letter.invocations, letter.function_error) == ("RetriesExhausted", 3, None)


def test_only_records_that_failed_in_the_last_attempt_are_dead_lettered():
    # Given a retry from 41 in which 41 and 43 fail again, and 42 now succeeds
    state = MappingState(retries={(TOPIC, 0): RetryPosition(41, 2)})
    batch = [rec(41), rec(42), rec(43)]

    # When the retries are exhausted
    decision = handled(PARTIAL, batch, failures((0, 41), (0, 43)), state)

    # Then 41 and 43 go to the destination, 42 does not, and the partition is done
    assert [d.record.offset for d in decision.dead_letters] == [41, 43]
    assert decision.commit == {(TOPIC, 0): 44}


def test_exhausted_retries_after_an_error_dead_letter_the_whole_batch_with_the_error():
    state = MappingState(retries={(TOPIC, 0): RetryPosition(10, 2)})
    decision = handled(PARTIAL, [rec(10), rec(11)], FunctionError("ValueError: bad"), state)
    assert [(d.record.offset, d.reason) for d in decision.dead_letters] == [
        (10, "function error: ValueError: bad; retries exhausted (2)"),
        (11, "function error: ValueError: bad; retries exhausted (2)"),
    ]
    assert {(d.condition, d.invocations, d.function_error) for d in decision.dead_letters} == {
        ("RetriesExhausted", 3, "Unhandled")
    }
    assert decision.commit == {(TOPIC, 0): 12}
    assert decision.seek == {}


def test_zero_retries_dead_letter_on_the_first_failure():
    decision = handled(Rules(report_batch_item_failures=True, maximum_retry_attempts=0), [rec(5)], failures((0, 5)))
    assert [d.record.offset for d in decision.dead_letters] == [5]
    assert decision.commit == {(TOPIC, 0): 6}


def test_infinite_retries_never_dead_letter():
    # Given MaximumRetryAttempts -1 and a record that always fails
    rules = Rules(report_batch_item_failures=True, maximum_retry_attempts=-1)
    state = MappingState()

    # When it has failed 500 times
    for _ in range(500):
        decision = handled(rules, [rec(5), rec(6)], failures((0, 5)), state)
        state = decision.state

    # Then it is still retried from 5
    assert decision.dead_letters == ()
    assert decision.seek == {(TOPIC, 0): 5}
    assert state.retries[(TOPIC, 0)].failures == 500


def test_the_retry_count_starts_again_when_the_partition_made_progress():
    # Given a partition that failed twice at 41
    state = MappingState(retries={(TOPIC, 0): RetryPosition(41, 2)})

    # When the retry gets past 41 but fails at 43
    decision = handled(PARTIAL, [rec(41), rec(42), rec(43)], failures((0, 43)), state)

    # Then 43 has its own full budget
    assert decision.dead_letters == ()
    assert decision.state.retries == {(TOPIC, 0): RetryPosition(43, 1)}


def test_a_success_forgets_the_retry_position():
    state = MappingState(retries={(TOPIC, 0): RetryPosition(41, 2)})
    decision = handled(PARTIAL, [rec(41), rec(42)], FunctionResult(None), state)
    assert decision.state.retries == {}
    assert decision.commit == {(TOPIC, 0): 43}


def test_infinite_retries_with_a_destination_are_capped_at_ten():
    trigger = KafkaTrigger(
        name="t",
        function="f",
        topics=(TOPIC,),
        consumer_group_id="g",
        maximum_retry_attempts=-1,
        on_failure_destination="kafka://notifications.dlq",
    )
    assert Rules.of(trigger).maximum_retry_attempts == 10
    assert (
        Rules.of(KafkaTrigger(name="t", function="f", topics=(TOPIC,), consumer_group_id="g")).maximum_retry_attempts
        == -1
    )


def test_records_failing_in_the_last_attempt_are_dead_lettered_together_and_the_partition_drains():
    # Given ten records where 3 and 7 always fail
    topic = FakeTopic([rec(o) for o in range(10)])

    def function(batch: list[KafkaRecord]) -> Outcome:
        return failures(*((0, r.offset) for r in batch if r.offset in (3, 7)))

    # When the mapping drains the topic with two retries
    invocations, dead = run(PARTIAL, topic, function)

    # Then after the first attempt and two retries from 3, both records that failed in the last one are
    # dead-lettered together, and the records that succeeded are not
    assert invocations == [list(range(10)), list(range(3, 10)), list(range(3, 10))]
    assert [d.record.offset for d in dead] == [3, 7]
    assert topic.committed == {(TOPIC, 0): 10}


# --------------------------------------------------------------------------- bisect


def test_bisect_splits_a_failed_batch_without_counting_a_retry_and_isolates_the_poison_record():
    # Given eight records where the function crashes whenever offset 5 is in the batch
    rules = Rules(report_batch_item_failures=True, maximum_retry_attempts=1, bisect_batch_on_function_error=True)
    topic = FakeTopic([rec(o) for o in range(8)])

    def function(batch: list[KafkaRecord]) -> Outcome:
        return FunctionError("RuntimeError: crash") if any(r.offset == 5 for r in batch) else FunctionResult(None)

    # When the mapping drains the topic
    invocations, dead = run(rules, topic, function, batch_size=8)

    # Then the batch is halved until 5 is alone, 5 alone is tried twice (one retry), and only 5 is dead-lettered
    assert invocations == [list(range(8)), [0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [4], [5], [5], [6, 7]]
    assert [d.record.offset for d in dead] == [5]
    assert topic.committed == {(TOPIC, 0): 8}


def test_bisect_does_not_apply_to_reported_item_failures():
    rules = Rules(report_batch_item_failures=True, maximum_retry_attempts=3, bisect_batch_on_function_error=True)
    decision = handled(rules, [rec(1), rec(2), rec(3), rec(4)], failures((0, 3)))
    assert decision.state.batch_limit is None
    assert decision.seek == {(TOPIC, 0): 3}
    assert decision.failures == {(TOPIC, 0): 1}


def test_a_bisected_retry_has_no_back_off():
    rules = Rules(bisect_batch_on_function_error=True)
    decision = handled(rules, [rec(1), rec(2), rec(3)], FunctionError("x"))
    assert decision.state.batch_limit == 2
    assert decision.failures == {(TOPIC, 0): 0}
    assert retry_delay(decision.failures[(TOPIC, 0)]) == 0


# --------------------------------------------------------------------------- record age


def test_records_older_than_the_maximum_age_go_to_the_destination_without_an_invocation():
    # Given a maximum age of one minute and a batch whose first two records are two minutes old
    rules = Rules(report_batch_item_failures=True, maximum_record_age_seconds=60)
    old = NOW_MS - 120_000
    records = [rec(1, timestamp=old), rec(2, timestamp=old), rec(3), rec(4)]

    # When the batch is planned and the function succeeds on the rest
    plan = plan_batch(rules, records, NOW_MS)
    decision = decide(rules, MappingState(), plan, FunctionResult(None))

    # Then only 3 and 4 were invoked, 1 and 2 are dead-lettered with the reason, and all are committed
    assert [r.offset for r in plan.invoke] == [3, 4]
    assert [(d.record.offset, d.reason) for d in decision.dead_letters] == [
        (1, "record older than MaximumRecordAgeInSeconds (60)"),
        (2, "record older than MaximumRecordAgeInSeconds (60)"),
    ]
    assert {(d.condition, d.invocations, d.function_error) for d in decision.dead_letters} == {
        ("RecordAgeExceeded", 0, None)
    }
    assert decision.commit == {(TOPIC, 0): 5}


def test_a_partition_of_only_expired_records_is_committed_without_an_invocation():
    rules = Rules(maximum_record_age_seconds=60)
    plan = plan_batch(rules, [rec(1, timestamp=0), rec(2, timestamp=0)], NOW_MS)
    decision = decide(rules, MappingState(), plan, None)
    assert plan.invoke == ()
    assert [d.record.offset for d in decision.dead_letters] == [1, 2]
    assert decision.commit == {(TOPIC, 0): 3}


def test_without_a_maximum_age_nothing_expires():
    plan = plan_batch(Rules(maximum_record_age_seconds=-1), [rec(1, timestamp=0)], NOW_MS)
    assert [r.offset for r in plan.invoke] == [1]
    assert plan.expired == ()


# --------------------------------------------------------------------------- back-off and invocation


def test_retry_back_off_grows_and_is_capped():
    assert [retry_delay(n, base=0.5, cap=4) for n in range(6)] == [0, 0.5, 1, 2, 4, 4]
    assert retry_delay(3, base=0) == 0


def test_invoke_sends_a_byte_exact_msk_event_and_reads_the_json_answer():
    # Given a handler that remembers its event
    seen = {}

    def handler(event, context):
        seen["event"], seen["name"] = event, context.function_name
        return {"batchItemFailures": []}

    # When two records of two partitions are invoked
    outcome = invoke(
        handler, [rec(1), rec(4, partition=2)], function_name="EmailSenderFunction", bootstrap="127.0.0.1:9092"
    )

    # Then the handler got an aws:kafka event grouped by partition that decodes to the same records
    assert outcome == FunctionResult({"batchItemFailures": []})
    assert seen["name"] == "EmailSenderFunction"
    assert seen["event"]["eventSource"] == "aws:kafka"
    assert list(seen["event"]["records"]) == [f"{TOPIC}-0", f"{TOPIC}-2"]
    assert read_event(seen["event"]) == [rec(1), rec(4, partition=2)]


def test_invoke_turns_an_exception_or_a_non_json_answer_into_a_function_error():
    def raising(event, context):
        raise ConnectionError("provider down")

    assert invoke(raising, [rec(1)], function_name="f", bootstrap="b:1") == FunctionError(
        "ConnectionError: provider down"
    )
    assert isinstance(invoke(lambda e, c: {"x": object()}, [rec(1)], function_name="f", bootstrap="b:1"), FunctionError)


# --------------------------------------------------------------------------- settings from the template


def test_the_project_template_gives_every_kafka_function_its_mapping_settings():
    # Given the project's template.yaml
    template = load_template()

    # When the email sender's trigger is read
    (trigger,) = template.function("EmailSenderFunction").kafka_triggers

    # Then every setting comes from the EventSourceMapping, including the ConsumerGroupId under !If
    assert trigger.topics == ("notifications.email",)
    assert trigger.consumer_group_id == "notifications-sender-email"
    assert trigger.starting_position == "TRIM_HORIZON"
    assert trigger.report_batch_item_failures is True
    assert trigger.on_failure_topic == "notifications.dlq"
    assert trigger.batch_size >= 1
    assert trigger.maximum_retry_attempts >= -1
    assert {t.topics for f in template.functions.values() for t in f.kafka_triggers} >= {
        ("notifications.requested",),
        ("notifications.email",),
    }


def test_a_template_with_sam_msk_events_and_cloudformation_tags_loads(tmp_path):
    # Given a template using a SAM MSK event, tags of every shape, and a conditional environment value
    path = tmp_path / "template.yaml"
    path.write_text(
        textwrap.dedent("""
        Globals:
          Function:
            Timeout: 30
            Environment:
              Variables:
                TABLE: !Ref Table
                MODE: !If [IsProd, prod, dev]
                LEVEL: INFO
                DEBUG: false
        Resources:
          Worker:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: src/
              Handler: app.handler
              Environment:
                Variables:
                  CHANNEL: sms
                  NAME: !Sub "${AWS::StackName}-worker"
              Events:
                Orders:
                  Type: MSK
                  Properties:
                    Stream: !GetAtt Cluster.Arn
                    Topics: [orders]
                    StartingPosition: LATEST
                    ConsumerGroupId: orders-worker
                    BatchSize: 5
                    MaximumBatchingWindowInSeconds: 0
          Other:
            Type: AWS::Serverless::Function
            Properties:
              CodeUri: other/
              Handler: other.main
          OtherTrigger:
            Type: AWS::Lambda::EventSourceMapping
            Properties:
              FunctionName: !GetAtt Other.Arn
              Topics: [payments]
              Enabled: !If [IsProd, true, !Ref AWS::NoValue]
              DestinationConfig: {OnFailure: {Destination: kafka://payments.dlq}}
    """)
    )

    # When it is loaded
    template = load_template(path)

    # Then triggers, defaults and the literal environment are as written
    worker, other = template.function("Worker"), template.function("Other")
    (orders,) = worker.kafka_triggers
    assert (
        orders.topics,
        orders.starting_position,
        orders.consumer_group_id,
        orders.batch_size,
        orders.batching_window_seconds,
    ) == (("orders",), "LATEST", "orders-worker", 5, 0.0)
    assert dict(worker.environment) == {"LEVEL": "INFO", "DEBUG": "false", "CHANNEL": "sms"}
    assert worker.timeout_seconds == 30
    assert (worker.handler_module, worker.handler_function) == ("app", "handler")
    (payments,) = other.kafka_triggers
    assert payments.consumer_group_id == "Other-local"
    assert payments.batch_size == 100
    assert payments.batching_window_seconds == 0.5
    assert payments.effective_retry_attempts == 10
    assert payments.on_failure_topic == "payments.dlq"


def test_a_non_kafka_on_failure_destination_is_refused(tmp_path):
    path = tmp_path / "template.yaml"
    path.write_text(
        textwrap.dedent("""
        Resources:
          Fn: {Type: AWS::Serverless::Function, Properties: {CodeUri: x/, Handler: a.b}}
          Trigger:
            Type: AWS::Lambda::EventSourceMapping
            Properties:
              FunctionName: !Ref Fn
              Topics: [t]
              DestinationConfig: {OnFailure: {Destination: arn:aws:sqs:us-east-1:1:q}}
    """)
    )
    with pytest.raises(TemplateError, match="only kafka://"):
        load_template(path)


def test_watchdog_sees_a_hung_poll_and_a_retry_that_is_never_redelivered():
    from devstack.esm import KafkaEventSourceMapping, MappingState

    # Given a mapping that is neither polling nor waiting for a retry
    mapping = KafkaEventSourceMapping(
        KafkaTrigger(name="t", function="f", topics=(TOPIC,), consumer_group_id="g"),
        lambda event, context: {"batchItemFailures": []},
        bootstrap="127.0.0.1:1",
    )
    assert mapping.stalled_for() == 0.0

    # When a poll started long ago and has not returned
    mapping.polling_since = time.monotonic() - 30
    # Then that is how long it has stalled
    assert 29 < mapping.stalled_for() < 31

    # When a partition waits for a retry but nothing was invoked for a while
    mapping.polling_since = None
    mapping._state = MappingState(retries={(TOPIC, 0): 1})
    mapping.last_invocation = time.monotonic() - 25
    assert 24 < mapping.stalled_for() < 26
    # And an invocation in progress is never a stall
    mapping.invoking = True
    assert mapping.stalled_for() == 0.0


def test_watchdog_sees_a_partition_whose_records_polls_never_return():
    from devstack.esm import KafkaEventSourceMapping

    class StuckConsumer:
        """Partition 0 has records beyond the consumer's position, yet polls come back empty."""

        def assignment(self):
            return {("t", 0), ("t", 1)}

        def paused(self):
            return set()

        def end_offsets(self, partitions):
            return dict.fromkeys(partitions, 10)

        def position(self, tp):
            return 3 if tp == ("t", 0) else 10

    # Given a mapping whose consumer is behind on one partition
    mapping = KafkaEventSourceMapping(
        KafkaTrigger(name="t", function="f", topics=(TOPIC,), consumer_group_id="g"),
        lambda event, context: {"batchItemFailures": []},
        bootstrap="127.0.0.1:1",
    )

    # When an empty poll is followed by the lag check, and 25 s pass without records
    mapping._check_lag(StuckConsumer())
    assert mapping.behind_since is not None
    mapping.behind_since -= 25

    # Then the watchdog sees a stall
    assert 24 < mapping.stalled_for() < 26

    # And a consumer that has caught up is not behind
    class CaughtUp(StuckConsumer):
        def position(self, tp):
            return 10

    mapping._lag_checked = 0.0
    mapping._check_lag(CaughtUp())
    assert mapping.behind_since is None and mapping.stalled_for() == 0.0


class MetadataLater:
    """A consumer whose metadata learns the topics only on the third look (as right after the topics' creation)."""

    def __init__(self, known_after: int = 3) -> None:
        self.looks = 0
        self.known_after = known_after

    def partitions_for_topic(self, topic):
        self.looks += 1
        return {0, 1, 2, 3} if self.looks >= self.known_after else set()


def test_a_consumer_joins_only_once_its_metadata_knows_the_topics():
    """kafka-python's group leader assigns nothing when it lacks a topic's metadata (dpkp/kafka-python#2377)."""
    # Given a consumer whose metadata learns the topic late
    consumer = MetadataLater()

    # When the mapping waits for the metadata before subscribing
    await_topic_metadata(consumer, [TOPIC], timeout=5, pause=0)

    # Then it asked until the partitions were known
    assert consumer.looks == 3


def test_a_topic_that_never_appears_is_left_to_the_join_after_the_wait():
    # Given a consumer whose metadata never learns the topic
    consumer = MetadataLater(known_after=10**9)

    # When the wait is over
    started = time.monotonic()
    await_topic_metadata(consumer, [TOPIC], timeout=0.3, pause=0.05)

    # Then the mapping goes on (and joins its group) instead of hanging
    assert 0.3 <= time.monotonic() - started < 2
    assert consumer.looks > 1
