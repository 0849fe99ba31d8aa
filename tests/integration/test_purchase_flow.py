"""One purchase through the real broker: ingest -> requested topic -> fanout -> email topic -> sender -> SES."""

from __future__ import annotations

import json

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from devstack.apigw import http_api_event, http_result
from devstack.consume import read_topic
from devstack.lambda_context import LocalLambdaContext
from devstack.msk_events import build_event
from tests.support import caller_id, sample_request

CLUSTER_ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/notifications/abcd1234-0000-0000-0000-000000000000-1"


def _by_key(key: str):
    return lambda record: record.key == key.encode()


def test_one_purchase_is_delivered_as_exactly_one_email(kafka_env, moto_aws, monkeypatch):
    import fanout_handler
    import ingest_handler
    import sender_handler

    # Given a purchase asking for email only
    body = sample_request(channels=["email"])
    nid, order_id = body["id"], body["purchase"]["order_id"]

    # When the shop posts it
    response = http_result(
        ingest_handler.handler(
            http_api_event(
                "POST",
                "/v1/notifications",
                body=json.dumps(body),
                headers={"content-type": "application/json", "x-correlation-id": "corr-flow-1"},
            ),
            LocalLambdaContext("ingest"),
        )
    )

    # Then it is accepted only after the broker holds the requested record
    assert response.status == 202, response.body
    assert response.json()["id"] == nid
    requested = read_topic(kafka_env, "notifications.requested", where=_by_key(nid), until=lambda r: len(r) >= 1)
    assert len(requested) == 1
    assert requested[0].header("correlation-id") == b"corr-flow-1"

    # When fanout receives it as an MSK event
    fanout_event = build_event(requested, bootstrap_servers=kafka_env, event_source_arn=CLUSTER_ARN)
    assert fanout_handler.handler(fanout_event, LocalLambdaContext("fanout")) == {"batchItemFailures": []}

    # Then exactly one message waits on the email topic, correlation id kept
    emails = read_topic(kafka_env, "notifications.email", where=_by_key(nid), until=lambda r: len(r) >= 1)
    assert len(emails) == 1
    assert json.loads(emails[0].value)["schema"] == "notification.channel/v2"
    assert json.loads(emails[0].value)["caller"] == caller_id()
    assert emails[0].header("correlation-id") == b"corr-flow-1"

    # When the email sender receives that message
    monkeypatch.setenv("CHANNEL", "email")
    sender_event = build_event(emails, bootstrap_servers=kafka_env, event_source_arn=CLUSTER_ARN)
    assert sender_handler.handler(sender_event, LocalLambdaContext("email-sender")) == {"batchItemFailures": []}

    # Then SES holds exactly one message, naming the order id
    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    mine = [m for m in sent if order_id in json.dumps(m.__dict__, default=str)]
    assert len(mine) == 1, [m.__dict__ for m in sent]
    assert mine[0].destinations["ToAddresses"] == ["ada@example.com"]
