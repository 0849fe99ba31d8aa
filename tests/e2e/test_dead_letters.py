"""The local stack runs the dead-letter function from template.yaml: a Kafka trigger's on-failure record on
``notifications.dlq`` turns its notification's channel ``failed`` in ``GET /v1/notifications/{id}``.

The record is AWS's documented example (https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html,
copied in ``tests.on_failure_example``) carrying one of our channel messages, as a trigger in AWS writes it.
"""

from __future__ import annotations

import base64
import json

import boto3
import pytest
from kafka import KafkaProducer

from devstack.msk_events import signed_bytes
from devstack.stack import DUMMY_CREDENTIALS, REGION, LocalStack
from notifications.contracts.envelopes import CHANNEL_SCHEMA_V2, ChannelMessage
from notifications.contracts.keys import NotificationKey
from notifications.registry import Channel
from tests.channel_support import channel_message
from tests.e2e.test_local_stack import eventually, states
from tests.on_failure_example import documented_example
from tests.support import caller_id, record_accepted

pytestmark = pytest.mark.e2e


def test_a_notification_the_trigger_gave_up_on_shows_failed_with_the_condition(local_stack: LocalStack) -> None:
    assert local_stack.info is not None
    api, bootstrap = local_stack.info.api_url, local_stack.info.bootstrap
    assert "DlqFunction" in local_stack.workers

    # Given a notification ingest accepted for SMS from the local caller (written to the stack's status table; no
    # sender has it)
    wire = json.loads(channel_message(Channel.SMS).to_json()) | {"schema": CHANNEL_SCHEMA_V2, "caller": caller_id()}
    message = ChannelMessage.model_validate(wire)
    nid = str(message.notification_id)
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=local_stack.info.dynamodb_endpoint,
        region_name=REGION,
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    record_accepted(dynamodb, NotificationKey(caller_id(), message.notification_id), [Channel.SMS])
    assert states(api, nid)["sms"]["state"] == "accepted"

    # When the SMS trigger's on-failure record for its message lands on the DLQ
    document = documented_example()
    [example] = document["payload"]["records"].pop("my-topic-0")
    document["payload"]["records"]["notifications.sms-1"] = [
        {
            **example,
            "topic": "notifications.sms",
            "partition": 1,
            "key": base64.b64encode(nid.encode()).decode(),
            "value": base64.b64encode(message.to_json()).decode(),
            "headers": [{"correlation-id": signed_bytes(message.correlation_id.encode())}],
        }
    ]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send("notifications.dlq", key=nid.encode(), value=json.dumps(document).encode()).get(timeout=30)
    producer.close()

    # Then GET shows the channel failed with the trigger's condition: nothing stays pending
    def failed():
        sms = states(api, nid).get("sms", {})
        return sms if sms.get("state") == "failed" else None

    sms = eventually(failed, timeout=60)
    assert sms, states(api, nid)
    assert sms["last_error"] == "RetriesExhausted after 3 invocation(s) (function error: Unhandled)"
