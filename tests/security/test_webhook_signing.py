"""Webhook signing per Standard Webhooks, end to end over a socket: the real sender signs, the local receiver
verifies on its own code. Spec: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
(``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256 over id.timestamp.body>``,
``whsec_`` secrets, several signatures during a key rotation, timestamps checked against replay).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from devstack import aws_resources
from devstack.receivers import DeliveryReceiver
from notifications.errors import PermanentDeliveryError
from notifications.registry import Channel
from tests.channel_support import build_sender, channel_message

OLD_KEY = "whsec_" + base64.b64encode(b"the key in use before a rotation").decode()
NEW_KEY = "whsec_" + base64.b64encode(b"the key a rotation introduces..!").decode()


def use_secret(session, url: str, *keys: str) -> None:
    session.client("secretsmanager").put_secret_value(
        SecretId=aws_resources.destination_secret("webhook"),
        SecretString=json.dumps({"url": url, "signing_keys": list(keys)}),
    )


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def send_raw(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


@pytest.mark.parametrize(
    ("sender_keys", "receiver_keys"),
    [
        ((OLD_KEY,), (NEW_KEY, OLD_KEY)),  # receivers learn the new key first
        ((NEW_KEY, OLD_KEY), (OLD_KEY,)),  # then the sender signs with both: receivers still on the old key
        ((NEW_KEY, OLD_KEY), (NEW_KEY,)),  # and receivers already on the new one
        ((NEW_KEY,), (NEW_KEY, OLD_KEY)),  # finally the old key is dropped from the sender
    ],
    ids=["receiver-knows-both", "sender-signs-both-old-receiver", "sender-signs-both-new-receiver", "sender-new-only"],
)
def test_a_delivery_signed_by_either_key_during_a_rotation_is_accepted(moto_aws, sender_keys, receiver_keys):
    # Given a receiver and a sender at some step of a key rotation
    with DeliveryReceiver(signing_key=list(receiver_keys)) as receiver:
        use_secret(moto_aws, receiver.url("/webhook"), *sender_keys)
        message = channel_message(Channel.WEBHOOK)

        # When the webhook sender delivers
        build_sender(Channel.WEBHOOK).send(message)

        # Then the receiver verified it and took it, once
        [delivery] = receiver.accepted()
        assert delivery.signature_ok is True
        assert len(delivery.headers["webhook-signature"].split(" ")) == len(sender_keys)


def test_a_key_the_receiver_does_not_know_is_refused_and_permanent(moto_aws):
    with DeliveryReceiver(signing_key=[OLD_KEY]) as receiver:
        use_secret(moto_aws, receiver.url("/webhook"), NEW_KEY)
        with pytest.raises(PermanentDeliveryError) as caught:
            build_sender(Channel.WEBHOOK).send(channel_message(Channel.WEBHOOK))
        assert caught.value.reason == "webhook answered HTTP 401 (invalid_signature)"
        assert receiver.accepted() == []


def test_an_unsigned_delivery_is_refused():
    with DeliveryReceiver(signing_key=[OLD_KEY]) as receiver:
        # Given a request without the signature headers (or with only some of them)
        body = b'{"schema": "purchase.notification/v1"}'
        now = str(int(time.time()))
        for headers in ({}, {"webhook-id": "m-1", "webhook-timestamp": now}, {"webhook-signature": "v1,AAAA"}):
            # Then it is refused as unsigned and never delivered
            assert send_raw(receiver.url("/webhook"), body, headers) == (401, b"unsigned")
        assert receiver.accepted() == []


def test_a_tampered_body_or_id_is_refused():
    with DeliveryReceiver(signing_key=[OLD_KEY]) as receiver:
        now = int(time.time())
        body = b'{"total": "49.90"}'
        signature = sign(OLD_KEY, "m-1", now, body)
        ok = {"webhook-id": "m-1", "webhook-timestamp": str(now), "webhook-signature": signature}
        assert send_raw(receiver.url("/webhook"), b'{"total": "0.01"}', ok) == (401, b"invalid_signature")
        assert send_raw(receiver.url("/webhook"), body, {**ok, "webhook-id": "m-2"}) == (401, b"invalid_signature")
        assert send_raw(receiver.url("/webhook"), body, {**ok, "webhook-signature": "v2," + signature[3:]}) == (
            401,
            b"invalid_signature",
        )
        assert receiver.accepted() == []


@pytest.mark.parametrize("offset", [-301, -3600, 301])
def test_a_timestamp_more_than_five_minutes_off_is_refused(offset):
    # Given a correctly signed request whose timestamp is old (a captured request replayed later) or in the future
    with DeliveryReceiver(signing_key=[OLD_KEY]) as receiver:
        timestamp = int(time.time()) + offset
        body = b"{}"
        headers = {
            "webhook-id": "m-1",
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(OLD_KEY, "m-1", timestamp, body),
        }

        # Then the signature does not save it
        assert send_raw(receiver.url("/webhook"), body, headers) == (401, b"stale_timestamp")
        assert receiver.accepted() == []


def send_headers(url: str, headers: dict[str, str | bytes], body: bytes = b"{}") -> tuple[int, bytes]:
    """A POST with exactly these headers (values as given, bytes sent as they are; no Content-Length added)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        connection.putrequest("POST", parts.path)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


MALFORMED_SIGNED = {
    # A digit str.isdigit() takes and int() does not; a number int() refuses to read (over 4300 digits)
    "superscript-two-timestamp": ({"webhook-timestamp": "\u00b2"}, b"stale_timestamp"),
    "huge-timestamp": ({"webhook-timestamp": "9" * 5000}, b"stale_timestamp"),
    # Signatures that are not base64 text (compare_digest refuses non-ASCII str)
    "non-ascii-signature": ({"webhook-signature": "v1,\u00e9t\u00e9"}, b"invalid_signature"),
    "latin-1-byte-signature": ({"webhook-signature": b"v1,\xff\xfe"}, b"invalid_signature"),
}


@pytest.mark.parametrize(("change", "refusal"), MALFORMED_SIGNED.values(), ids=list(MALFORMED_SIGNED))
def test_a_malformed_timestamp_or_signature_is_refused_and_the_receiver_keeps_answering(change, refusal):
    with DeliveryReceiver(signing_key=[OLD_KEY]) as receiver:
        # Given a signed request with one header malformed
        now = int(time.time())
        body = b"{}"
        headers = {
            "webhook-id": "m-1",
            "webhook-timestamp": str(now),
            "webhook-signature": sign(OLD_KEY, "m-1", now, body),
        }
        bad = {**headers, **change, "Content-Type": "application/json", "Content-Length": str(len(body))}

        # When it is posted, then it is refused with 401 and the reason (the handler did not crash)
        assert send_headers(receiver.url("/webhook"), bad, body) == (401, refusal)
        # And the well-formed request is still taken
        assert send_raw(receiver.url("/webhook"), body, headers) == (200, b"ok")
        assert len(receiver.accepted()) == 1


@pytest.mark.parametrize("length", ["abc", "-1", "\u00b2", "1" * 5000])
def test_a_malformed_content_length_is_answered_400(length):
    with DeliveryReceiver(signing_key=[OLD_KEY]) as receiver:
        assert send_headers(receiver.url("/webhook"), {"Content-Length": length}, b"") == (400, b"bad_content_length")
        assert receiver.accepted() == []


def test_a_replayed_delivery_is_not_delivered_again(moto_aws):
    # Given a delivery the receiver accepted
    with DeliveryReceiver(signing_key=[OLD_KEY]) as receiver:
        use_secret(moto_aws, receiver.url("/webhook"), OLD_KEY)
        build_sender(Channel.WEBHOOK).send(channel_message(Channel.WEBHOOK))
        [first] = receiver.accepted()

        # When the same request is sent again byte for byte (a replay within the tolerance)
        replay = {name: first.headers[name] for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
        status, answer = send_raw(receiver.url("/webhook"), first.body, replay)

        # Then it is answered without being delivered a second time (its webhook-id was seen)
        assert (status, answer) == (200, b"duplicate_ignored")
        assert receiver.accepted() == [first]
        assert [d.headers["webhook-id"] for d in receiver.replays()] == [first.headers["webhook-id"]]


def test_a_malformed_receiver_key_is_a_setup_error():
    with pytest.raises(ValueError, match="whsec_"):
        DeliveryReceiver(signing_key=["whsec_" + base64.b64encode(b"short").decode()])
