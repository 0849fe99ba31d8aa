"""notifications-destinations against moto's Secrets Manager, with what ingest and the senders then do: a caller's
destination set, its webhook key rotated and the rotation finished, the destination removed; each step seen by a
real receiver on a local socket."""

from __future__ import annotations

import io
import json

import pytest

from devstack import aws_resources
from devstack.receivers import DeliveryReceiver
from notifications.errors import PermanentDeliveryError
from notifications.registry import Channel
from notifications.runtime import ingest
from ops import destinations as tool
from tests.channel_support import build_sender, channel_message
from tests.security.callers import new_caller, post
from tests.support import MemoryPublisher, caller_id, sample_request

PREFIX = aws_resources.DESTINATION_PREFIX


def run(session, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = tool.main(["--prefix", PREFIX, *argv], out=out, client=session.client("secretsmanager"))
    return code, out.getvalue()


def printed_key(output: str) -> str:
    [line] = [line for line in output.splitlines() if "signing key" in line]
    return line.rsplit(": ", 1)[1]


@pytest.fixture
def publisher(moto_aws, monkeypatch: pytest.MonkeyPatch) -> MemoryPublisher:
    fake = MemoryPublisher()
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: fake)
    return fake


def test_a_destination_set_rotated_and_removed_by_the_operator(moto_aws, publisher):
    shop = new_caller()
    caller = caller_id(shop)
    body = sample_request(channels=["email", "slack", "webhook"])
    assert post(shop, body).status == 422  # Given a new shop without destinations

    with DeliveryReceiver() as slack, DeliveryReceiver() as webhook:
        # When the operator sets its Slack and webhook destinations (the webhook's key generated)
        code, _ = run(moto_aws, "set", "--caller", caller, "--channel", "slack", "--url", slack.url("/s"))
        assert code == 0
        code, output = run(moto_aws, "set", "--caller", caller, "--channel", "webhook", "--url", webhook.url("/w"))
        assert code == 0
        first_key = printed_key(output)
        webhook.signing_keys = [first_key]

        # Then list shows both without their URL or key, ingest accepts the request and both senders deliver there
        code, listed = run(moto_aws, "list", "--caller", caller)
        assert code == 0 and listed.startswith("slack: set, secret ") and "\nwebhook: set, secret " in listed
        assert "127.0.0.1" not in listed and "whsec_" not in listed
        ingest.ingest_runtime.cache_clear()  # a fresh execution environment: nothing cached from the 422
        assert post(shop, body).status == 202
        build_sender(Channel.SLACK).send(channel_message(Channel.SLACK, caller=caller))
        build_sender(Channel.WEBHOOK).send(channel_message(Channel.WEBHOOK, caller=caller))
        assert len(slack.accepted("/s")) == 1
        assert [d.signature_ok for d in webhook.deliveries("/w")] == [True]

        # When the webhook key is rotated: a receiver that knows only the new key accepts (both keys sign)
        code, output = run(moto_aws, "rotate-key", "--caller", caller)
        second_key = printed_key(output)
        assert code == 0 and second_key != first_key
        webhook.signing_keys = [second_key]
        build_sender(Channel.WEBHOOK).send(channel_message(Channel.WEBHOOK, caller=caller))
        assert webhook.deliveries("/w")[-1].signature_ok is True
        assert len(webhook.deliveries("/w")[-1].headers["webhook-signature"].split()) == 2
        assert run(moto_aws, "rotate-key", "--caller", caller)[0] == 1  # one rotation at a time

        # When the rotation is finished: only the new key signs, the old one no longer verifies
        assert run(moto_aws, "rotate-key", "--caller", caller, "--finish")[0] == 0
        webhook.signing_keys = [first_key]
        with pytest.raises(PermanentDeliveryError):
            build_sender(Channel.WEBHOOK).send(channel_message(Channel.WEBHOOK, caller=caller))
        assert webhook.deliveries("/w")[-1].signature_ok is False
        secret = moto_aws.client("secretsmanager").get_secret_value(
            SecretId=aws_resources.destination_secret("webhook", shop)
        )
        assert json.loads(secret["SecretString"])["signing_keys"] == [second_key]

    # When the Slack destination is removed
    code, output = run(moto_aws, "remove", "--caller", caller, "--channel", "slack")
    assert code == 0 and "recoverable for 7 days" in output

    # Then list says so, ingest refuses Slack again, and a Slack message already accepted is dead-lettered
    assert run(moto_aws, "list", "--caller", caller)[1].startswith("slack: removed on ")
    ingest.ingest_runtime.cache_clear()
    refused = post(shop, sample_request(channels=["slack"]))
    assert refused.status == 422 and "'slack'" in refused.json()["error"]["details"][0]["msg"]
    with pytest.raises(PermanentDeliveryError):
        build_sender(Channel.SLACK).send(channel_message(Channel.SLACK, caller=caller))

    # And set restores it
    assert run(moto_aws, "set", "--caller", caller, "--channel", "slack", "--url", "https://hooks.slack.com/x")[0] == 0
    assert run(moto_aws, "list", "--caller", caller)[1].startswith("slack: set, secret ")


def test_setting_the_webhook_url_again_keeps_its_keys(moto_aws):
    caller = caller_id(new_caller())
    _, output = run(moto_aws, "set", "--caller", caller, "--channel", "webhook", "--url", "https://erp.example/a")
    key = printed_key(output)
    code, output = run(moto_aws, "set", "--caller", caller, "--channel", "webhook", "--url", "https://erp.example/b")
    assert code == 0 and "signing key" not in output
    name = tool.Destinations(moto_aws.client("secretsmanager"), PREFIX).name(caller, "webhook")
    content = json.loads(moto_aws.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"])
    assert content == {"url": "https://erp.example/b", "signing_keys": [key]}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--channel", "slack", "--url", "ftp://hooks.example/x"], "invalid slack destination: url"),
        (["--channel", "webhook", "--url", "https://e.example", "--signing-key", "whsec_c2hvcnQ="], "signing_keys.0"),
        (["--channel", "slack", "--url", "https://e.example", "--signing-key", "whsec_x"], "webhook channel only"),
    ],
)
def test_invalid_input_is_refused_with_a_clear_error_and_writes_nothing(moto_aws, capsys, argv, message):
    caller = caller_id(new_caller())
    code, _ = run(moto_aws, "set", "--caller", caller, *argv)
    assert code == 1
    error = capsys.readouterr().err
    assert message in error
    assert "ftp://" not in error and "c2hvcnQ" not in error  # the value is never repeated
    assert run(moto_aws, "list", "--caller", caller)[1] == "slack: not set\nwebhook: not set\n"


def test_a_malformed_caller_or_a_missing_prefix_is_a_usage_error(moto_aws, monkeypatch, capsys):
    with pytest.raises(SystemExit) as caught:
        run(moto_aws, "list", "--caller", "shop-a")
    assert caught.value.code == 2 and "not a caller id" in capsys.readouterr().err
    monkeypatch.delenv("DESTINATION_SECRET_PREFIX", raising=False)
    with pytest.raises(SystemExit) as caught:
        tool.main(["list", "--caller", caller_id()], client=moto_aws.client("secretsmanager"))
    assert caught.value.code == 2 and "DestinationSecretPrefix" in capsys.readouterr().err


def test_nothing_to_rotate_or_remove_is_an_error(moto_aws, capsys):
    caller = caller_id(new_caller())
    assert run(moto_aws, "rotate-key", "--caller", caller)[0] == 1
    assert "has no webhook destination" in capsys.readouterr().err
    assert run(moto_aws, "remove", "--caller", caller, "--channel", "slack")[0] == 1
    assert "has no slack destination" in capsys.readouterr().err
