"""The HTTP channels' shared rules: which URLs may receive deliveries, and what each answer means."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import pytest

from notifications.channels.http import HttpAnswer, check_url, parse_retry_after, post, raise_for_status
from notifications.errors import PermanentDeliveryError, TransientDeliveryError

PERMANENT = [301, 302, 307, 400, 401, 403, 404, 405, 409, 410, 413, 415, 422]
TRANSIENT = [408, 425, 429, 500, 502, 503, 504]


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_delivered(status):
    # Given / When / Then: no error for a success answer
    raise_for_status("slack", HttpAnswer(status))


@pytest.mark.parametrize("status", PERMANENT)
def test_client_errors_and_redirects_are_permanent(status):
    # Given an answer the receiver will give again on every retry
    # When it is classified
    with pytest.raises(PermanentDeliveryError) as caught:
        raise_for_status("webhook", HttpAnswer(status))

    # Then it is permanent and names the status
    assert caught.value.provider_code == f"HTTP {status}"


@pytest.mark.parametrize("status", TRANSIENT)
def test_timeouts_throttling_and_server_errors_are_transient(status):
    # Given an answer that may change on a retry, with a Retry-After
    answer = HttpAnswer(status, {"retry-after": "7"})

    # When it is classified
    with pytest.raises(TransientDeliveryError) as caught:
        raise_for_status("slack", answer)

    # Then it is transient and carries the wait
    assert caught.value.retry_after == 7.0
    assert caught.value.provider_code == f"HTTP {status}"


def test_a_429_without_retry_after_has_no_wait():
    with pytest.raises(TransientDeliveryError) as caught:
        raise_for_status("slack", HttpAnswer(429))
    assert caught.value.retry_after is None


def test_short_error_tokens_are_kept_and_other_bodies_are_not():
    # Given Slack's token answer, and an HTML page that could carry anything
    with pytest.raises(PermanentDeliveryError) as token:
        raise_for_status("slack", HttpAnswer(404, body=b"channel_not_found"))
    with pytest.raises(PermanentDeliveryError) as page:
        raise_for_status("webhook", HttpAnswer(404, body=b"<html>Ada ada@example.com</html>"))

    # Then the reason names the token, and nothing of the page
    assert token.value.reason == "slack answered HTTP 404 (channel_not_found)"
    assert page.value.reason == "webhook answered HTTP 404"


def test_retry_after_as_seconds_or_http_date():
    now = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Sat, 21 Nov 2026 10:00:30 GMT", now=lambda: now) == 30.0
    assert parse_retry_after("Sat, 21 Nov 2026 09:00:00 GMT", now=lambda: now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("²") is None  # a Unicode digit (str.isdigit accepts it, float() does not)
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("url", ["https://hooks.slack.com/services/T/B/x", "https://93.184.215.14/hook"])
def test_https_to_a_public_host_is_allowed_everywhere(url):
    assert check_url(url) == url
    assert check_url(url, allow_private=True) == url


PRIVATE = [
    "http://127.0.0.1:3001/slack",
    "http://localhost/webhook",
    "https://localhost/webhook",
    "https://[::1]/x",
    "https://10.0.0.1/x",
    "http://192.168.1.20/x",
    "https://172.16.5.4/x",
    "https://169.254.169.254/latest/meta-data/",
    "https://100.64.0.1/x",
    "https://[fd00::1]/x",
    "https://0.0.0.0/x",
    "https://api.localhost/x",
]


@pytest.mark.parametrize("url", PRIVATE)
def test_loopback_and_private_targets_only_in_dev(url):
    # Given a loopback, private, link-local (instance metadata), shared or unspecified address
    # Then only the dev environment may deliver to it
    assert check_url(url, allow_private=True) == url
    with pytest.raises(ValueError, match="dev environment only"):
        check_url(url)


EMBEDDING_PRIVATE = {
    "nat64-well-known-prefix": "https://[64:ff9b::a00:1]/x",  # RFC 6052: 10.0.0.1
    "nat64-dotted": "https://[64:ff9b::169.254.169.254]/latest/meta-data/",
    "nat64-local-use-prefix": "https://[64:ff9b:1:a00:1::]/x",  # RFC 8215: local use, never global
    "ipv4-mapped": "https://[::ffff:127.0.0.1]/x",
    "ipv4-compatible": "https://[::127.0.0.1]/x",
    "ipv4-compatible-hex": "https://[::a00:1]/x",
    "6to4": "https://[2002:a00:1::1]/x",  # RFC 3056: 10.0.0.1
}


@pytest.mark.parametrize("url", EMBEDDING_PRIVATE.values(), ids=list(EMBEDDING_PRIVATE))
def test_an_ipv6_address_embedding_a_private_ipv4_address_is_private(url):
    # Given an IPv6 literal that reaches (or names) a loopback, private or link-local IPv4 address
    # Then it is judged by that IPv4 address: dev only
    assert check_url(url, allow_private=True) == url
    with pytest.raises(ValueError, match="dev environment only"):
        check_url(url)


@pytest.mark.parametrize("url", ["https://[64:ff9b::5db8:d70e]/hook", "https://[::ffff:93.184.215.14]/hook"])
def test_an_ipv6_address_embedding_a_public_ipv4_address_is_public(url):
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    ["http://hooks.example.com/x", "http://93.184.215.14/x", "ftp://example.com/x", "file:///etc/passwd", "https://"],
)
def test_other_urls_are_refused_in_every_environment(url):
    for allow_private in (False, True):
        with pytest.raises(ValueError, match="https"):
            check_url(url, allow_private=allow_private)


def test_post_refuses_a_name_resolving_to_a_private_address_outside_dev(monkeypatch):
    # Given a public-looking name that resolves to the instance metadata address
    resolved: list[str] = []

    def fake_getaddrinfo(host, port, *args, **kwargs):
        resolved.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)

    # When posting to it outside dev, then nothing is sent and the configuration is blamed
    with pytest.raises(TransientDeliveryError) as caught:
        post("https://hooks.partner.example/x", b"{}", {}, timeout=1, provider="webhook")
    assert caught.value.provider_code == "config"
    assert "resolves to a loopback or private address" in caught.value.reason
    assert resolved == ["hooks.partner.example"]


def test_post_refuses_a_plain_http_url_before_connecting():
    # Given a plain-http URL on another host
    # When posting to it
    with pytest.raises(TransientDeliveryError) as caught:
        post("http://hooks.example.com/x", b"{}", {}, timeout=1, provider="webhook")

    # Then nothing is sent and the configuration is blamed
    assert caught.value.provider_code == "config"
