"""The local receivers stand in for Slack and webhook consumers: a repeated Idempotency-Key is not a new delivery.

They and the local HTTP API share one server lifecycle (``devstack.threaded_server``), tested here too.
"""

from __future__ import annotations

import errno
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler

import pytest

from devstack.receivers import DeliveryReceiver
from devstack.threaded_server import ThreadedServer


def post(url: str, key: str) -> int:
    request = urllib.request.Request(url, data=b"{}", method="POST", headers={"Idempotency-Key": key})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


def test_receiver_counts_a_repeated_idempotency_key_as_a_replay_not_a_delivery():
    with DeliveryReceiver() as receiver:
        url = receiver.url("/webhook")
        assert [post(url, "k-1"), post(url, "k-1"), post(url, "k-2")] == [200, 200, 200]
        assert [d.headers["idempotency-key"] for d in receiver.accepted()] == ["k-1", "k-2"]
        assert [d.headers["idempotency-key"] for d in receiver.replays()] == ["k-1"]


def test_a_stopped_receiver_frees_its_port_for_the_next_one():
    # Given a receiver that picked a free port, and was stopped
    with DeliveryReceiver() as first:
        port = first.port
        assert post(first.url("/slack"), "k-1") == 200

    # Then nothing answers there any more
    with pytest.raises(urllib.error.URLError):
        post(f"http://127.0.0.1:{port}/slack", "k-2")

    # When a new receiver asks for that port (the local stack restarts on its preferred ports)
    with DeliveryReceiver(port) as second:
        # Then it gets it, and starts with no deliveries
        assert second.port == port
        assert post(second.url("/slack"), "k-3") == 200
        assert [d.headers["idempotency-key"] for d in second.accepted()] == ["k-3"]


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        return


def test_servers_share_a_port_only_with_reuse_port():
    # Given a server on a free port with reuse_port (the HTTP API's execution environments do this)
    with ThreadedServer(_Hello, reuse_port=True) as first:
        # When a second server asks for the same port without it, then the port is taken
        with pytest.raises(OSError) as taken, ThreadedServer(_Hello, first.port):  # noqa: PT011 - errno below
            pass
        assert taken.value.errno == errno.EADDRINUSE
        # When it asks with reuse_port, then both serve it
        with ThreadedServer(_Hello, first.port, reuse_port=True) as second:
            assert second.port == first.port
            with urllib.request.urlopen(first.url("/"), timeout=5) as response:
                assert response.read() == b"hello"
