"""Every function of template.yaml, packaged as ``sam build`` would, under AWS's Runtime Interface Emulator.

Each runs in its own emulator with ``awslambdaric`` on the runtime's Python (3.13 where the machine has it), with
only the template's environment plus the ``--env-vars`` file ``make run`` writes (what ``sam local invoke
--env-vars`` gives a function inside its container), and is invoked with its sample from ``events/``, unchanged
(the custom resource's sample gets local endpoints). What it did is checked where it landed: the real broker,
moto, the receivers. Each function's init phase (the emulator's ``INIT REPORT``, Lambda's ``Init Duration``) is
recorded as a test property; ``python -m bench.init_duration`` compares it across builds (no timing asserts here).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends

from devstack.consume import end_offsets, records_since
from devstack.runtime.emulator import REGION, Invocation
from devstack.runtime.samples import EVENTS_DIR as EVENTS
from devstack.runtime.samples import sample_events
from devstack.template_config import load_template

SPECS = load_template().functions
NOTIFICATION_ID = b"8f58c11d-ebc2-4ca7-a934-226e2bb6192c"


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def functions_where(predicate) -> list[str]:
    return [fid for fid, spec in SPECS.items() if predicate(spec)]


def check_cold_then_warm(first: Invocation, later: list[Invocation], record_property) -> None:
    """The first invocation of an environment reports its init phase, later ones do not."""
    assert first.init_duration_ms is not None
    assert first.init_duration_ms > 0
    assert [invocation.init_duration_ms for invocation in later] == [None] * len(later)
    record_property("init_duration_ms", first.init_duration_ms)


def test_every_function_has_a_sample_event():
    assert SPECS
    assert {fid: [p.name for p in sample_events(spec)] for fid, spec in SPECS.items() if not sample_events(spec)} == {}


def test_the_env_vars_file_points_every_function_at_the_stack(env_vars_file, kafka_bootstrap, moto_endpoint):
    content = json.loads(env_vars_file.read_text())
    assert set(content) == set(SPECS)
    for variables in content.values():
        assert variables["KAFKA_BOOTSTRAP_SERVERS"] == kafka_bootstrap
        assert variables["KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
        assert variables["AWS_ENDPOINT_URL"] == moto_endpoint
        assert all(isinstance(value, str) for value in variables.values())


@pytest.mark.parametrize("function_id", functions_where(lambda spec: bool(spec.http_routes)))
def test_http_function_accepts_publishes_and_answers(function_id, start_function, kafka_bootstrap, record_property):
    # Given the requested topic's current end, and the function in the emulator
    requested = SPECS[function_id].environment.get("TOPIC_REQUESTED", "notifications.requested")
    before = end_offsets(kafka_bootstrap, requested)
    function = start_function(function_id)

    # When the valid sample is invoked
    posted = function.invoke(load(EVENTS / "ingest_post_valid.json"))

    # Then it is accepted (202), and exactly one record with the sample's id is on the real topic
    assert posted.payload["statusCode"] == 202, posted.payload
    assert json.loads(posted.payload["body"])["status"] == "accepted"
    [record] = records_since(kafka_bootstrap, before)
    assert record.key == NOTIFICATION_ID
    assert dict(record.headers)["correlation-id"] == b"sample-corr-0001"

    # When the GET and the invalid samples are invoked in the same (now warm) environment
    status = function.invoke(load(EVENTS / "ingest_get.json"))
    invalid = function.invoke(load(EVENTS / "ingest_post_invalid.json"))

    # Then the status lists each requested channel as accepted, the invalid request is refused field by field
    assert status.payload["statusCode"] == 200, status.payload
    channels = {(c["channel"], c["state"]) for c in json.loads(status.payload["body"])["channels"]}
    assert channels == {("email", "accepted"), ("sms", "accepted"), ("slack", "accepted")}
    assert invalid.payload["statusCode"] == 422, invalid.payload
    assert json.loads(invalid.payload["body"])["error"]["code"] == "validation_failed"
    check_cold_then_warm(posted, [status, invalid], record_property)


@pytest.mark.parametrize("function_id", functions_where(lambda spec: spec.handler == "fanout_handler.handler"))
def test_fanout_writes_one_record_per_channel(function_id, start_function, kafka_bootstrap, record_property):
    # Given the sample (one requested notification for every channel) and the channel topics' ends
    [sample] = sample_events(SPECS[function_id])
    event = load(sample)
    [source] = [r for batch in event["records"].values() for r in batch]
    channels = json.loads(base64.b64decode(source["value"]))["channels"]
    before = {channel: end_offsets(kafka_bootstrap, f"notifications.{channel}") for channel in channels}

    # When the fanout function is invoked with it
    invocation = start_function(function_id).invoke(event)

    # Then the whole batch succeeded and each channel topic has one new record for the notification
    assert invocation.payload == {"batchItemFailures": []}
    for channel in channels:
        keys = [record.key for record in records_since(kafka_bootstrap, before[channel])]
        assert keys == [NOTIFICATION_ID], channel
    check_cold_then_warm(invocation, [], record_property)


def delivered(channel: str, receivers) -> list[str]:
    """What reached the provider of a channel: SES and SNS (SMS, and push kept with its endpoint) in moto, the Slack
    and webhook receivers."""
    if channel == "email":
        return [str(m.destinations["ToAddresses"]) for m in ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages]
    if channel == "sms":
        return [phone for phone, *_ in sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages.values()]
    if channel == "push":
        endpoints = sns_backends[DEFAULT_ACCOUNT_ID][REGION].platform_endpoints.values()
        return [f"{endpoint.arn} {message}" for endpoint in endpoints for message in endpoint.messages.values()]
    return [d.body.decode() for d in receivers[channel].accepted(f"/{channel}/sample-shop")]  # the samples' caller


@pytest.mark.parametrize("function_id", functions_where(lambda spec: "CHANNEL" in spec.environment))
def test_sender_delivers_its_sample(function_id, start_function, receivers, record_property):
    # Given a sender and its sample (one notification on its channel's topic)
    channel = SPECS[function_id].environment["CHANNEL"]
    [sample] = sample_events(SPECS[function_id])
    before = len(delivered(channel, receivers))

    # When it is invoked with the sample, then again (a redelivery)
    function = start_function(function_id)
    first = function.invoke(load(sample))
    again = function.invoke(load(sample))

    # Then both batches succeed and the provider received the notification exactly once
    assert first.payload == {"batchItemFailures": []}
    assert again.payload == {"batchItemFailures": []}
    received = delivered(channel, receivers)[before:]
    assert len(received) == 1, received
    expected = {"email": "ada@example.com", "sms": "+4915112345678"}.get(channel, "A-1001")
    assert expected in received[0]
    check_cold_then_warm(first, [again], record_property)


class _CloudFormation:
    """Receives the custom resource's answer: a PUT to the pre-signed ResponseURL (AWS CloudFormation User Guide,
    "Custom resource response objects": https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html)."""

    def __init__(self) -> None:
        self.responses: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                outer.responses.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/response"


@pytest.fixture
def cloudformation() -> Iterator[_CloudFormation]:
    endpoint = _CloudFormation()
    thread = threading.Thread(target=endpoint.server.serve_forever, daemon=True)
    thread.start()
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()


@pytest.mark.parametrize(
    "function_id",
    functions_where(lambda spec: not spec.http_routes and not spec.kafka_triggers and not spec.async_events),
)
def test_custom_resource_creates_topics_and_answers(
    function_id, start_function, kafka_bootstrap, cloudformation, unique_topic, record_property
):
    # Given the Create request sample (AWS CloudFormation User Guide, "Custom resource request objects":
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requests.html), aimed at the local
    # broker and a local response URL, asking for one new topic besides the existing ones
    [sample] = sample_events(SPECS[function_id])
    event = load(sample)
    props = event["ResourceProperties"]
    props.update(BootstrapServers=kafka_bootstrap, SecurityProtocol="PLAINTEXT", ReplicationFactor="1")
    props.update(MinInsyncReplicas="1", Topics=[*props["Topics"], unique_topic])
    props.pop("SaslMechanism")
    event["ResponseURL"] = cloudformation.url

    # When the function is invoked with it
    invocation = start_function(function_id).invoke(event)

    # Then CloudFormation hears SUCCESS, and the new topic exists on the broker
    assert invocation.payload is None
    [response] = cloudformation.responses
    assert response["Status"] == "SUCCESS", response
    assert response["RequestId"] == event["RequestId"]
    assert response["Data"]["Created"] == unique_topic
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap.split(","))
    try:
        assert unique_topic in consumer.topics()
    finally:
        consumer.close()
    check_cold_then_warm(invocation, [], record_property)


@pytest.fixture
def unique_topic() -> str:
    return f"runtime-test-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("function_id", functions_where(lambda spec: spec.handler == "dlq_handler.handler"))
def test_the_dlq_function_marks_the_dead_letter_failed(function_id, start_function, moto_endpoint, record_property):
    # Given the sample: a webhook message the sender dead-lettered (dlq-* headers)
    event = load(EVENTS / "dlq_kafka.json")
    assert EVENTS / "dlq_kafka.json" in sample_events(SPECS[function_id])
    # (under a notification id of its own: other tests of this package deliver the sample's notification)
    fresh = str(uuid.uuid4())
    for batch in event["records"].values():
        for r in batch:
            r["value"] = base64.b64encode(
                base64.b64decode(r["value"]).replace(NOTIFICATION_ID, fresh.encode())
            ).decode()
    values = [json.loads(base64.b64decode(r["value"])) for batch in event["records"].values() for r in batch]
    message = next(v for v in values if str(v.get("schema", "")).startswith("notification.channel/"))
    assert message["notification_id"] == fresh
    # status items live in the caller's namespace (v2 records carry the caller; v1 ones are keyed by the bare id)
    key = f"{message['caller']}/{fresh}" if message.get("caller") else fresh

    # When the dead-letter function is invoked with it
    invocation = start_function(function_id).invoke(event)

    # Then the batch succeeded and the notification's channel shows failed in the status table
    assert invocation.payload == {"batchItemFailures": []}
    import boto3

    item = boto3.client(
        "dynamodb",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).get_item(
        TableName=SPECS[function_id].environment.get("STATUS_TABLE_NAME", "notifications-status"),
        Key={"notification_id": {"S": key}, "channel": {"S": message["channel"]}},
    )
    assert item["Item"]["state"]["S"] == "failed", item
    check_cold_then_warm(invocation, [], record_property)
