"""Every ``sam local invoke`` command of docs/deploy.md, run through SAM CLI in Docker against the local stack.

Each outcome is checked where it lands: the ingest's 202 and its record on Kafka; the fanout's record on every
channel topic; each sender's delivery at its provider (the local SES, moto's SNS, the Slack and webhook
receivers), exactly once; no record reported failed (``batchItemFailures`` empty).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from devstack import aws_resources
from devstack.consume import read_topic
from devstack.stack import EndpointSession, LocalStack
from devstack.template_config import channel_names
from notifications.contracts.keys import NotificationKey
from notifications.status import DynamoStatusView, StatusTable
from tests.e2e.test_local_stack import eventually
from tests.samlocal.conftest import Command, Setup, documented_setup

SETUP = documented_setup()
BUILD, *INVOCATIONS = SETUP.sam
EVENTS = Path(__file__).resolve().parents[2] / "events"


def _sample(event_file: str) -> dict[str, Any]:
    """The (first) Kafka record a sample event carries, decoded."""
    event = json.loads((EVENTS / Path(event_file).name).read_text())
    record = next(iter(event["records"].values()))[0]
    return dict(json.loads(base64.b64decode(record["value"])))


def _answer(stdout: str) -> Any:
    """The function's answer: the last line SAM CLI prints on stdout."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "sam local invoke printed no answer"
    return json.loads(lines[-1])


def _status(stack: LocalStack, sample: dict[str, Any]) -> list[tuple[str, str]]:
    """The sample notification's channels and states in the stack's status table (written once the provider took
    the message)."""
    assert stack.info is not None
    dynamodb = EndpointSession(stack.info.aws_endpoint, stack.info.dynamodb_endpoint).client("dynamodb")
    key = NotificationKey(sample["caller"], UUID(sample["notification_id"]))
    found = DynamoStatusView(StatusTable(aws_resources.STATUS_TABLE, dynamodb)).get(key)
    return [(c.channel.value, c.state.value) for c in found.channels] if found else []


@pytest.fixture(scope="module")
def built(run: Callable[..., Any]) -> None:
    done = run(BUILD, timeout=900)
    assert done.returncode == 0, f"{BUILD.text}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_the_doc_invokes_every_function_with_a_kafka_or_http_sample() -> None:
    # The block documents one command per function the product's path runs through, each with its sample event
    invoked = {c.argv[3]: Path(c.argv[c.argv.index("-e") + 1]).name for c in INVOCATIONS}
    senders = {f"{channel.capitalize()}SenderFunction": f"sender_{channel}_msk.json" for channel in channel_names()}
    assert invoked == {"IngestFunction": "ingest_post_valid.json", "FanoutFunction": "fanout_msk.json", **senders}
    assert BUILD.argv[:2] == ["sam", "build"]
    assert all(c.argv[:3] == ["sam", "local", "invoke"] and "--config-env" in c.argv for c in INVOCATIONS)


def test_the_stack_serves_the_bridge_and_the_env_vars_point_there(stack: LocalStack, setup: Setup) -> None:
    wiring = json.loads((stack.data_dir / "env-vars.json").read_text())
    for function, variables in wiring.items():
        for name, value in variables.items():
            if name.startswith("AWS_ENDPOINT_URL") or name == "KAFKA_BOOTSTRAP_SERVERS":
                assert setup.functions_host in value, (function, name, value)
        assert variables["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"  # each function its own Kafka user


@pytest.mark.parametrize("command", INVOCATIONS, ids=[c.argv[3] for c in INVOCATIONS])
def test_documented_invocation(command: Command, built: None, run: Callable[..., Any], stack: LocalStack) -> None:
    function = command.argv[3]
    event_file = command.argv[command.argv.index("-e") + 1]
    assert stack.broker is not None
    admin = stack.broker.bootstrap  # the super user's listener, for reading back

    # When the documented command runs
    done = run(command)
    assert done.returncode == 0, f"{command.text}:\n{done.stderr[-4000:]}"
    answer = _answer(done.stdout)

    if function == "IngestFunction":
        # Then the API answers 202 and the request is on Kafka, once
        body = json.loads(json.loads((EVENTS / Path(event_file).name).read_text())["body"])
        assert answer["statusCode"] == 202, (answer, done.stderr[-3000:])
        assert json.loads(answer["body"])["id"] == body["id"]
        key = body["id"].encode()
        found = read_topic(admin, "notifications.requested", where=lambda r: r.key == key, until=bool)
        assert len(found) == 1
        return

    # Then no record is reported failed
    assert answer == {"batchItemFailures": []}, done.stderr[-4000:]
    sample = _sample(event_file)
    if function == "FanoutFunction":
        # And every requested channel has the notification on its topic, once
        key = sample["notification_id"].encode()
        for channel in sample["channels"]:
            found = read_topic(admin, f"notifications.{channel}", where=lambda r: r.key == key, until=bool)
            assert len(found) == 1, channel
        return
    # And the channel's provider took it: its status says sent (the samples share one notification: its other
    # channels' rows are the other invocations')
    channel = sample["channel"]
    sent = eventually(lambda: dict(_status(stack, sample)).get(channel) == "sent", timeout=30)
    assert sent, (_status(stack, sample), done.stderr[-4000:])
