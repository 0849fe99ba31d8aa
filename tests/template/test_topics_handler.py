"""The KafkaTopics custom resource handler: idempotent create, grow, never delete, always answer CloudFormation."""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from types import ModuleType
from typing import Any

import pytest

from devstack.threaded_server import ThreadedServer
from notifications.registry import Channel
from tests.template.conftest import ROOT

TOPICS = ["notifications.requested", *(f"notifications.{channel.value}" for channel in Channel), "notifications.dlq"]


def _load_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("topics_handler", ROOT / "functions/topics/topics_handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


topics_handler = _load_handler()


class FakeAdmin:
    """The KafkaAdminClient calls the handler makes, against an in-memory cluster."""

    def __init__(self, existing: dict[str, int] | None = None, hang: bool = False, **config: Any) -> None:
        self.config = config
        self.topics = dict(existing or {})
        self.created: dict[str, dict[str, Any]] = {}
        self.hang = hang
        self.closed = False
        self.retention: dict[str, str] = {}

    def list_topics(self) -> list[str]:
        if self.hang:
            time.sleep(30)
        return list(self.topics)

    def create_topics(self, spec: dict[str, dict[str, Any]], timeout_ms: int, raise_errors: bool) -> dict[str, Any]:
        assert raise_errors is False
        result = []
        for name, options in spec.items():
            code = 36 if name in self.topics else 0
            self.topics.setdefault(name, options["num_partitions"])
            self.created[name] = options
            result.append({"name": name, "error_code": code, "error_message": None})
        return {"topics": result}

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"name": n, "error_code": 0, "partitions": [{}] * self.topics[n]} for n in names]

    def create_partitions(self, grow: dict[str, int], timeout_ms: int) -> None:
        self.topics.update(grow)

    def alter_configs(self, resources: list[Any]) -> dict[str, dict[str, str]]:
        for resource in resources:
            self.retention[resource.name] = resource.configs["retention.ms"]
        return {"topic": {resource.name: "OK" for resource in resources}}

    def close(self) -> None:
        self.closed = True


class _Recorder(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []  # noqa: RUF012 - shared by design for the test server

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Recorder.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def response_url() -> Iterator[str]:
    _Recorder.received = []
    with ThreadedServer(_Recorder) as server:
        yield server.url("/response")


class _Context:
    def __init__(self, remaining_ms: int = 120_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def _event(request_type: str, url: str, **props: Any) -> dict[str, Any]:
    properties = {
        "BootstrapServers": "b-1:9098,b-2:9098",
        "SecurityProtocol": "SASL_SSL",
        "SaslMechanism": "AWS_MSK_IAM",
        "Topics": TOPICS,
        "Partitions": "6",  # CloudFormation passes every property as a string
        "ReplicationFactor": "3",
        "MinInsyncReplicas": "2",
        **props,
    }
    event = {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:eu-central-1:111111111111:stack/s/1",
        "RequestId": "req-1",
        "LogicalResourceId": "KafkaTopics",
        "ResourceType": "Custom::KafkaTopics",
        "ResourceProperties": properties,
    }
    if request_type != "Create":
        event["PhysicalResourceId"] = "KafkaTopics-kafka-topics"
    return event


def test_create_makes_missing_topics_with_rf_and_min_isr(response_url: str) -> None:
    admins: list[FakeAdmin] = []

    def factory(**config: Any) -> FakeAdmin:
        admins.append(FakeAdmin({"notifications.requested": 6}, **config))
        return admins[-1]

    topics_handler.handler(_event("Create", response_url), _Context(), admin_factory=factory)

    (response,) = _Recorder.received
    assert response["Status"] == "SUCCESS", response
    assert response["PhysicalResourceId"] == "KafkaTopics-kafka-topics"
    admin = admins[0]
    assert admin.config["security_protocol"] == "SASL_SSL"
    assert admin.config["sasl_mechanism"] == "AWS_MSK_IAM"
    assert admin.config["bootstrap_servers"] == ["b-1:9098", "b-2:9098"]
    assert set(admin.created) == set(TOPICS) - {"notifications.requested"}
    week, four_weeks = str(7 * 86_400_000), str(28 * 86_400_000)
    for name, options in admin.created.items():
        retention = four_weeks if name == "notifications.dlq" else week
        assert options == {
            "num_partitions": 6,
            "replication_factor": 3,
            "configs": {"min.insync.replicas": "2", "retention.ms": retention},
        }
    # And the topic that already existed got its retention bounded too
    assert admin.retention == {"notifications.requested": week}
    assert admin.closed
    assert response["Data"]["Created"].split(",") == [t for t in TOPICS if t != "notifications.requested"]


def test_update_is_idempotent_and_grows_partitions(response_url: str) -> None:
    existing = dict.fromkeys(TOPICS, 3) | {"notifications.dlq": 12}
    admin = FakeAdmin(existing)
    topics_handler.handler(_event("Update", response_url), _Context(), admin_factory=lambda **_: admin)

    (response,) = _Recorder.received
    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == "KafkaTopics-kafka-topics"
    assert admin.created == {}
    assert admin.topics["notifications.email"] == 6
    assert admin.topics["notifications.dlq"] == 12  # never shrunk


def test_update_sets_the_configured_retention_on_every_existing_topic(response_url: str) -> None:
    # Given every topic already there, and retention settings from the template
    admin = FakeAdmin(dict.fromkeys(TOPICS, 6))
    event = _event(
        "Update", response_url, RetentionMs="86400000", DlqTopic="notifications.dlq", DlqRetentionMs="604800000"
    )

    # When the stack is updated
    topics_handler.handler(event, _Context(), admin_factory=lambda **_: admin)

    # Then each topic's retention.ms is set, the DLQ's longer
    (response,) = _Recorder.received
    assert response["Status"] == "SUCCESS", response
    assert admin.retention == {t: "604800000" if t == "notifications.dlq" else "86400000" for t in TOPICS}
    assert "notifications.dlq=604800000" in response["Data"]["RetentionMs"]


@pytest.mark.parametrize(
    ("props", "reason"),
    [
        ({"RetentionMs": "-1"}, "bounded"),
        ({"DlqRetentionMs": "-1"}, "bounded"),
        ({"RetentionMs": "0"}, "bounded"),
        ({"RetentionMs": "604800000", "DlqRetentionMs": "86400000"}, "must not be shorter"),
    ],
)
def test_unbounded_or_inverted_retention_is_refused(response_url: str, props: dict[str, str], reason: str) -> None:
    admin = FakeAdmin()
    topics_handler.handler(_event("Create", response_url, **props), _Context(), admin_factory=lambda **_: admin)
    (response,) = _Recorder.received
    assert response["Status"] == "FAILED"
    assert reason in response["Reason"]
    assert admin.created == {} and admin.retention == {}


def test_delete_never_touches_kafka(response_url: str) -> None:
    def factory(**_: Any) -> FakeAdmin:
        raise AssertionError("Delete must not connect to Kafka")

    topics_handler.handler(_event("Delete", response_url), _Context(), admin_factory=factory)
    (response,) = _Recorder.received
    assert response["Status"] == "SUCCESS"


def test_errors_become_failed_responses(response_url: str) -> None:
    def factory(**_: Any) -> FakeAdmin:
        raise ConnectionError("no brokers reachable")

    topics_handler.handler(_event("Create", response_url), _Context(), admin_factory=factory)
    (response,) = _Recorder.received
    assert response["Status"] == "FAILED"
    assert "no brokers reachable" in response["Reason"]


def test_invalid_min_isr_is_rejected(response_url: str) -> None:
    topics_handler.handler(
        _event("Create", response_url, MinInsyncReplicas="4"), _Context(), admin_factory=lambda **_: FakeAdmin()
    )
    (response,) = _Recorder.received
    assert response["Status"] == "FAILED"
    assert "MinInsyncReplicas" in response["Reason"]


def test_answers_before_the_function_times_out(response_url: str) -> None:
    # 15 s left, 10 s margin -> 5 s budget; the fake admin hangs for 30 s.
    started = time.monotonic()
    topics_handler.handler(
        _event("Create", response_url), _Context(remaining_ms=15_000), admin_factory=lambda **_: FakeAdmin(hang=True)
    )
    assert time.monotonic() - started < 10
    (response,) = _Recorder.received
    assert response["Status"] == "FAILED"
    assert "did not answer" in response["Reason"]


@pytest.mark.integration
def test_against_a_real_broker(response_url: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """kafka-python's real KafkaAdminClient: create, re-run (idempotent), grow; single broker so RF 1."""
    import os

    from devstack.broker import KafkaBroker

    bootstrap = os.environ.get("KAFKA_TEST_BOOTSTRAP_SERVERS")
    broker = None
    if not bootstrap:
        broker = KafkaBroker(tmp_path_factory.mktemp("kafka-topics"))
        bootstrap = broker.start(timeout=120)
    prefix = f"cr{time.monotonic_ns()}."
    names = [prefix + t for t in TOPICS]
    base = {
        "SecurityProtocol": "PLAINTEXT",
        "SaslMechanism": "",
        "BootstrapServers": bootstrap,
        "Topics": names,
        "DlqTopic": prefix + "notifications.dlq",
    }
    try:
        for partitions in ("2", "2", "4"):
            _Recorder.received = []
            event = _event("Update", response_url, **base, Partitions=partitions, ReplicationFactor="1")
            event["ResourceProperties"]["MinInsyncReplicas"] = "1"
            topics_handler.handler(event, _Context(), admin_factory=topics_handler._default_admin_factory)
            (response,) = _Recorder.received
            assert response["Status"] == "SUCCESS", response

        from kafka import KafkaAdminClient
        from kafka.admin import ConfigResource, ConfigResourceType

        assert set(response["Data"]["Grown"].split(",")) == set(names)
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            deadline = time.monotonic() + 15  # broker metadata catches up with the controller asynchronously
            while True:
                described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}
                if described == dict.fromkeys(names, 4) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
        finally:
            admin.close()
        assert described == dict.fromkeys(names, 4)
        # And every topic's retention.ms is the bounded one the handler set, the DLQ's longer
        retention = {name: entries["retention.ms"]["value"] for name, entries in configs["topic"].items()}
        week, four_weeks = str(7 * 86_400_000), str(28 * 86_400_000)
        assert retention == {n: four_weeks if n.endswith(".dlq") else week for n in names}
    finally:
        if broker is not None:
            broker.stop()


def _spend_limit_event(request_type: str, url: str, limit: str) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:eu-central-1:111111111111:stack/s/1",
        "RequestId": "req-2",
        "LogicalResourceId": "SmsSpendLimit",
        "ResourceType": "Custom::SmsSpendLimit",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", "MonthlySpendLimitUsd": limit},
    }


def test_sms_spend_limit_sets_the_accounts_monthly_limit(response_url: str) -> None:
    """SetSMSAttributes MonthlySpendLimit (https://docs.aws.amazon.com/sns/latest/api/API_SetSMSAttributes.html),
    against moto's SNS; Kafka is never contacted."""
    import boto3
    from moto import mock_aws

    def no_kafka(**_: Any) -> FakeAdmin:
        raise AssertionError("the spend limit must not connect to Kafka")

    with mock_aws():
        sns = boto3.client("sns", region_name="eu-central-1")
        topics_handler.handler(
            _spend_limit_event("Create", response_url, "25"),
            _Context(),
            admin_factory=no_kafka,
            sns_factory=lambda: sns,
        )
        (response,) = _Recorder.received
        assert response["Status"] == "SUCCESS", response
        assert response["PhysicalResourceId"] == "SmsSpendLimit-sms-spend-limit"
        assert response["Data"] == {"MonthlySpendLimit": "25"}
        assert sns.get_sms_attributes(attributes=["MonthlySpendLimit"])["attributes"] == {"MonthlySpendLimit": "25"}

        # And a limit that is not a whole number of USD fails the stack operation instead of being guessed
        _Recorder.received = []
        topics_handler.handler(
            _spend_limit_event("Update", response_url, "-3"),
            _Context(),
            admin_factory=no_kafka,
            sns_factory=lambda: sns,
        )
        (response,) = _Recorder.received
        assert response["Status"] == "FAILED"
        assert "MonthlySpendLimitUsd" in response["Reason"]
        assert sns.get_sms_attributes(attributes=["MonthlySpendLimit"])["attributes"] == {"MonthlySpendLimit": "25"}
