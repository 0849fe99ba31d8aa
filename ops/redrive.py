"""Redrive: look at ``notifications.dlq`` and put chosen records back on the topic they came from.

    notifications-redrive list [--limit N]
    notifications-redrive replay --offset N [--offset M ...] [--dry-run]
    notifications-redrive replay --all [--dry-run]

Both kinds of dead letters are read (``notifications.dead_letters``): our stages' own (the original record with
``dlq-*`` headers) and the Lambda Kafka triggers' on-failure records (AWS's JSON document with the original record
in its ``payload``: https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html).

``list`` prints, per original record: its DLQ position (the offset, ``partition:offset`` beyond partition 0), the
source topic/partition/offset, the stage that gave it up, the reason (for a trigger's record, its condition first)
and the key. ``replay`` publishes each original record's key, value and headers (without ``dlq-*`` headers) to its
source topic (acks=all, every acknowledgement checked). Replaying twice is safe: senders deduplicate on the
delivery key, so a notification already sent is not sent again.

The cluster and its authentication are the functions' settings (``notifications.settings.KafkaSettings``):
``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_MECHANISM`` (``KAFKA_SASL_SECRET_ARN`` for
SCRAM) and ``TOPIC_DLQ``, each overridable by a flag. Against MSK with IAM access control: ``--security-protocol
SASL_SSL --sasl-mechanism AWS_MSK_IAM`` and the brokers' IAM port (9098); kafka-python signs with botocore's
default credential chain and region (docs.aws.amazon.com/msk/latest/developerguide/iam-access-control.html,
.../port-info.html). See docs/operations.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from notifications.dead_letters import DeadLetter, read_dead_letters
from notifications.errors import ConfigurationError
from notifications.kafka.msk_event import KafkaRecord
from notifications.kafka.producer import KafkaPublisher, OutgoingRecord, Publisher, producer_config
from notifications.records import DLQ_SOURCE_TOPIC
from notifications.settings import KafkaSettings

# What a consumer takes from the producer's configuration: where the cluster is and how to authenticate to it.
_CONNECTION_KEYS = frozenset(
    {"bootstrap_servers", "security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password"}
)


class RedriveError(Exception):
    """The DLQ cannot be read or a request cannot be carried out."""


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


def replay_record(dead_letter: DeadLetter) -> OutgoingRecord:
    """The original record, as it was on its source topic before it was given up."""
    original = dead_letter.original
    if original is None:
        raise RedriveError(
            f"DLQ record {dead_letter.position} has no {DLQ_SOURCE_TOPIC} header and is no on-failure record; "
            "it cannot be replayed"
        )
    return OutgoingRecord(topic=original.topic, key=original.key, value=original.value or b"", headers=original.headers)


def parse_position(text: str) -> tuple[int, int]:
    """``N`` (partition 0) or ``P:N`` as (partition, offset)."""
    partition, _, offset = text.rpartition(":")
    try:
        return (int(partition) if partition else 0), int(offset)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an offset: {text!r} (N or PARTITION:N)") from None


def kafka_settings(
    *,
    bootstrap: str | None = None,
    security_protocol: str | None = None,
    sasl_mechanism: str | None = None,
    env: Mapping[str, str] | None = None,
) -> KafkaSettings:
    """The functions' Kafka settings from the environment, with the flags given on top."""
    values = dict(os.environ if env is None else env)
    flags = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_SECURITY_PROTOCOL": security_protocol,
        "KAFKA_SASL_MECHANISM": sasl_mechanism,
    }
    values.update({name: value for name, value in flags.items() if value})
    if not values.get("KAFKA_BOOTSTRAP_SERVERS"):
        raise RedriveError("no cluster: set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap")
    try:
        settings = KafkaSettings.from_env(values)
    except ConfigurationError as exc:
        raise RedriveError(str(exc)) from exc
    if settings.kafka_sasl_mechanism and settings.kafka_security_protocol != "SASL_SSL":
        # kafka-python only authenticates on SASL_ ports; MSK's IAM listener would refuse a plaintext client.
        raise RedriveError(f"SASL mechanism {settings.kafka_sasl_mechanism} needs security protocol SASL_SSL")
    if settings.kafka_sasl_mechanism == "AWS_MSK_IAM":
        _require_aws_region()
    return settings


def _require_aws_region() -> None:
    """kafka-python's AWS_MSK_IAM signs for botocore's region; say so up front rather than fail on connect."""
    from botocore.session import Session  # noqa: PLC0415 - only IAM needs botocore

    if not Session().get_config_variable("region"):
        raise RedriveError("AWS_MSK_IAM signs for a region: set AWS_DEFAULT_REGION (or a profile with a region)")


def consumer_config(settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python consumer settings: the producer's connection and authentication (for AWS_MSK_IAM, SASL_SSL
    signed with botocore's default credentials; for SCRAM, the secret's username and password), no consumer group:
    the DLQ is read from its offsets, nothing is committed."""
    connection = {key: value for key, value in producer_config(settings).items() if key in _CONNECTION_KEYS}
    return {**connection, "client_id": "notifications-redrive", "group_id": None, "enable_auto_commit": False}


def read_to_end(
    settings: KafkaSettings, topic: str, *, last: int | None = None, timeout: float = 30.0
) -> list[KafkaRecord]:
    """Every record of ``topic`` up to its current end (the ``last`` N per partition if given), in partition and
    offset order. Reads exactly to the end offsets seen at the start, so the answer is complete, not a sample."""
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

    consumer = KafkaConsumer(**consumer_config(settings))
    try:
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            raise RedriveError(f"topic {topic} does not exist")
        partitions = [TopicPartition(topic, p) for p in sorted(numbers)]
        consumer.assign(partitions)
        begin = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, begin[tp] if last is None else max(begin[tp], end[tp] - last))
        found: list[KafkaRecord] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise RedriveError(f"{topic} was not read to its end within {timeout:.0f} s")
            for tp, batch in consumer.poll(timeout_ms=500).items():
                found.extend(KafkaRecord.from_consumer(r) for r in batch if r.offset < end[tp])
        return sorted(found, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def read_dlq(settings: KafkaSettings, *, last: int | None = None) -> list[DeadLetter]:
    """Every original record on the DLQ up to its current end (of the ``last`` N DLQ records per partition)."""
    return [
        letter
        for record in read_to_end(settings, settings.topic_dlq, last=last)
        for letter in read_dead_letters(record)
    ]


def select(dead_letters: Sequence[DeadLetter], positions: Sequence[tuple[int, int]]) -> list[DeadLetter]:
    """The dead letters at ``positions`` (all the originals a DLQ record holds), in the order asked; an unknown
    position is an error."""
    by_position: dict[tuple[int, int], list[DeadLetter]] = {}
    for letter in dead_letters:
        by_position.setdefault((letter.dlq.partition, letter.dlq.offset), []).append(letter)
    missing = [f"{p}:{o}" if p else str(o) for p, o in positions if (p, o) not in by_position]
    if missing:
        raise RedriveError(f"no DLQ record at {', '.join(missing)}")
    return [letter for position in dict.fromkeys(positions) for letter in by_position[position]]


def replay(dead_letters: Sequence[DeadLetter], publisher: Publisher) -> list[Exception | None]:
    """Publish every dead letter back to its source; one result per dead letter (None: acknowledged)."""
    plan: list[tuple[int, OutgoingRecord]] = []
    results: list[Exception | None] = [None] * len(dead_letters)
    for index, dead_letter in enumerate(dead_letters):
        try:
            plan.append((index, replay_record(dead_letter)))
        except RedriveError as exc:
            results[index] = exc
    for (index, _), error in zip(plan, publisher.publish_all([record for _, record in plan]), strict=True):
        results[index] = error
    return results


def _settings(args: argparse.Namespace) -> KafkaSettings:
    return kafka_settings(
        bootstrap=args.bootstrap, security_protocol=args.security_protocol, sasl_mechanism=args.sasl_mechanism
    )


def _cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    dead_letters = read_dlq(_settings(args), last=args.limit)
    if args.limit is not None:  # the newest N DLQ records over all partitions
        newest = sorted({(d.dlq.timestamp, d.dlq.partition, d.dlq.offset) for d in dead_letters})[-args.limit :]
        kept = {(partition, offset) for _, partition, offset in newest}
        dead_letters = [d for d in dead_letters if (d.dlq.partition, d.dlq.offset) in kept]
    out.write("OFFSET\tSOURCE\tSTAGE\tREASON\tKEY\n")
    for d in dead_letters:
        out.write(f"{d.position}\t{d.source}\t{d.stage}\t{d.reason}\t{_text(d.key)}\n")
    return 0


def _target(dead_letter: DeadLetter) -> str:
    return dead_letter.original.topic if dead_letter.original else "(not replayable: no source topic)"


def _cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    settings = _settings(args)
    dead_letters = read_dlq(settings)
    chosen = list(dead_letters) if args.all else select(dead_letters, args.offset)
    if args.dry_run:
        for d in chosen:
            out.write(f"would replay {d.position} -> {_target(d)} key={_text(d.key)}\n")
        return 0
    publisher = KafkaPublisher(settings)
    try:
        results = replay(chosen, publisher)
    finally:
        publisher.close()
    failed = 0
    for d, error in zip(chosen, results, strict=True):
        if error is None:
            out.write(f"replayed {d.position} -> {_target(d)} key={_text(d.key)}\n")
        else:
            failed += 1
            out.write(f"NOT replayed {d.position}: {type(error).__name__}: {error}\n")
    out.write(f"{len(chosen) - failed} replayed, {failed} failed\n")
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notifications-redrive", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument("--security-protocol", help="PLAINTEXT or SASL_SSL (default: KAFKA_SECURITY_PROTOCOL)")
    parser.add_argument(
        "--sasl-mechanism",
        help="AWS_MSK_IAM (MSK with IAM access control) or SCRAM-SHA-512 (default: KAFKA_SASL_MECHANISM)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="print the dead letters")
    listing.add_argument("--limit", type=int, help="only the N most recent")
    listing.set_defaults(func=_cmd_list)
    replaying = sub.add_parser("replay", help="publish dead letters back to their source topic")
    which = replaying.add_mutually_exclusive_group(required=True)
    which.add_argument("--offset", type=parse_position, action="append", help="DLQ offset (N or PARTITION:N)")
    which.add_argument("--all", action="store_true", help="every dead letter")
    replaying.add_argument("--dry-run", action="store_true", help="show what would be replayed, publish nothing")
    replaying.set_defaults(func=_cmd_replay)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result: int = args.func(args, out or sys.stdout)
    except RedriveError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
