"""The HTTP channels' shared rules: which URLs may receive deliveries, and what each answer means."""

from __future__ import annotations

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
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    "url", ["https://hooks.slack.com/services/T/B/x", "http://127.0.0.1:3001/slack", "http://localhost/webhook"]
)
def test_https_and_local_http_urls_are_allowed(url):
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url", ["http://hooks.example.com/x", "http://10.0.0.1/x", "ftp://example.com/x", "file:///etc/passwd", "https://"]
)
def test_other_urls_are_refused(url):
    with pytest.raises(ValueError, match="https"):
        check_url(url)


def test_post_refuses_a_plain_http_url_before_connecting():
    # Given a plain-http URL on another host
    # When posting to it
    with pytest.raises(TransientDeliveryError) as caught:
        post("http://hooks.example.com/x", b"{}", {}, timeout=1, provider="webhook")

    # Then nothing is sent and the configuration is blamed
    assert caught.value.provider_code == "config"
