"""Proof of the guarantees on the local stack: nothing accepted is lost, nothing is delivered twice, even while

(a) a sender process is SIGKILLed mid-batch and replaced,
(b) providers fail about 30 % of calls transiently (the Slack and webhook receivers answer 503/429, SES and SNS
    calls fail by injection before they are made), and
(c) the Kafka broker is restarted once.

Then, per notification and requested channel, the receivers are counted: delivered at least once (expect every
one) and delivered more than once (expect none). The same run's logs are searched for every customer address
(the PII check). ``CHAOS_NOTIFICATIONS`` sets the count (default 2000).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devstack.stack import LocalStack
from notifications.registry import Channel
from tests.support import access_archive, isolated_stack_config, sample_request

COUNT = int(os.environ.get("CHAOS_NOTIFICATIONS", "2000"))
CHANNELS = [channel.value for channel in Channel]
CLIENTS = 8
FAULT_RATE = 0.3
KILLED = "WebhookSenderFunction"


@pytest.fixture
def chaos_stack(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalStack]:
    monkeypatch.setenv("DEVSTACK_PROVIDER_FAULT_RATE", str(FAULT_RATE))
    monkeypatch.setenv("DEVSTACK_PROVIDER_FAULT_CHANNELS", "email,sms")
    config = dataclasses.replace(
        isolated_stack_config(tmp_path / "devstack"), access_archive=access_archive(tmp_path_factory)
    )
    progress: list[str] = []
    stack = LocalStack(config, progress=progress.append)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


class Shop:
    """Clients that post each notification until it is accepted, reusing its idempotency key on every retry."""

    def __init__(self, api: str) -> None:
        self.api = api
        self.accepted: list[dict[str, Any]] = []
        self.answers: Counter[int] = Counter()
        self.lock = threading.Lock()

    def post_until_accepted(self, body: dict[str, Any], deadline: float) -> None:
        data = json.dumps(body).encode()
        headers = {"content-type": "application/json", "idempotency-key": f"chaos-{body['id']}"}
        while time.monotonic() < deadline:
            request = urllib.request.Request(f"{self.api}/v1/notifications", data=data, method="POST", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError:
                status = 0
            with self.lock:
                self.answers[status] += 1
                if status == 202:
                    self.accepted.append(body)
                    return
            time.sleep(0.2)
        raise AssertionError(f"notification {body['id']} never accepted")


def notification(run: str, i: int, push_endpoints: list[str]) -> dict[str, Any]:
    channel = CHANNELS[i % len(CHANNELS)]
    body = sample_request(channels=[channel])
    body["customer"]["push_endpoint"] = push_endpoints[i % len(push_endpoints)]  # the stack's demo devices
    body["purchase"]["order_id"] = f"CH-{run}-{i:05d}"
    body["customer"]["email"] = f"chaos.{run}.{i:05d}@shop-customers.example"
    body["customer"]["phone"] = f"+4915{i:09d}"
    return body


def moto_data(stack: LocalStack) -> dict[str, Any]:
    assert stack.info is not None
    with urllib.request.urlopen(f"{stack.info.aws_endpoint}/moto-api/data.json", timeout=60) as response:
        return json.loads(response.read())


def deliveries(stack: LocalStack) -> Counter[str]:
    """How many times each order id reached its provider (receivers, the local SES, moto's SNS: SMS, and push kept
    with its platform endpoint)."""
    assert stack.slack is not None
    assert stack.webhook is not None
    found: Counter[str] = Counter()
    order = re.compile(rb"CH-[0-9a-f]+-[0-9]{5}")
    for d in stack.slack.accepted("/slack/local-shop"):
        found.update({m.decode() for m in order.findall(d.body)})
    for d in stack.webhook.accepted("/webhook/local-shop"):
        found[d.json()["purchase"]["order_id"]] += 1
    assert stack.ses is not None
    for message in stack.ses.messages():  # the local SES (devstack.providers)
        found.update({m.decode() for m in order.findall((message["text"] or "").encode())})
    data = moto_data(stack)
    for sms in data.get("sns", {}).get("SMS", []):
        found.update({m.decode() for m in order.findall(sms["message"].encode())})
    for endpoint in data.get("sns", {}).get("PlatformEndpoint", []):
        for message in (endpoint.get("messages") or {}).values():
            found.update({m.decode() for m in order.findall(message.encode())})
    return found


@pytest.mark.timeout(1500)
def test_no_loss_no_duplicate_under_kill_faults_and_broker_restart(chaos_stack: LocalStack) -> None:
    stack = chaos_stack
    assert stack.info is not None
    assert stack.broker is not None
    assert stack.slack is not None
    assert stack.webhook is not None
    run = uuid.uuid4().hex[:6]
    bodies = [notification(run, i, stack.info.push_endpoints) for i in range(COUNT)]
    shop = Shop(stack.info.api_url)

    # Given providers failing about 30 % of calls transiently
    stack.slack.fail_fraction(FAULT_RATE, status=503)
    stack.webhook.fail_fraction(FAULT_RATE, status=429, retry_after=0)

    # When the shop posts every notification while a sender is killed and the broker restarts
    chaos: list[str] = []

    def make_chaos() -> None:
        while len(shop.accepted) < COUNT // 4:
            time.sleep(0.2)
        pid = stack.kill_function(KILLED)
        chaos.append(f"SIGKILL {KILLED} (pid {pid}) at {len(shop.accepted)} accepted")
        while len(shop.accepted) < COUNT // 2:
            time.sleep(0.2)
        chaos.append(f"broker restart at {len(shop.accepted)} accepted")
        assert stack.broker is not None
        stack.broker.restart(timeout=120)
        chaos.append(f"broker back at {len(shop.accepted)} accepted")

    started = time.monotonic()
    chaos_thread = threading.Thread(target=make_chaos, daemon=True)
    chaos_thread.start()
    deadline = time.monotonic() + 900
    with ThreadPoolExecutor(CLIENTS) as clients:
        for outcome in [clients.submit(shop.post_until_accepted, body, deadline) for body in bodies]:
            outcome.result()
    chaos_thread.join(timeout=180)
    accepted_after = time.monotonic() - started

    # Then every accepted notification is delivered on its channel, and none twice
    expected = {b["purchase"]["order_id"] for b in shop.accepted}
    settle = time.monotonic() + 900
    found = deliveries(stack)
    while (expected - set(found)) and time.monotonic() < settle:
        time.sleep(3)
        found = deliveries(stack)
        missing = sorted(expected - set(found))
        print(f"chaos: waiting for {len(missing)} deliveries, e.g. {missing[:3]}", flush=True)
    time.sleep(5)  # anything still in flight would show up as a duplicate now
    found = deliveries(stack)
    lost = sorted(expected - set(found))
    duplicated = sorted(o for o, n in found.items() if n > 1)
    print(
        f"\nchaos: {COUNT} notifications, accepted {len(shop.accepted)} in {accepted_after:.0f} s,"
        f" answers {dict(shop.answers)}; {'; '.join(chaos)};"
        f" delivered {len(expected & set(found))}, lost {len(lost)}, duplicated {len(duplicated)},"
        f" replays absorbed by the webhook receiver's idempotency key {len(stack.webhook.replays('/webhook'))},"
        f" in {time.monotonic() - started:.0f} s"
    )
    assert len(chaos) == 3, chaos
    assert len(shop.accepted) == COUNT
    assert lost == [], f"{len(lost)} accepted notifications never delivered, e.g. {lost[:5]}"
    assert duplicated == [], f"{len(duplicated)} delivered more than once, e.g. {duplicated[:5]}"
    assert set(found) <= expected

    # And the run's logs hold no customer address (PII)
    assert stack.info is not None
    logs = list(Path(stack.info.logs_dir).glob("**/*.log")) + list((stack.config.data_dir / "kafka").glob("*.log"))
    assert logs
    addresses = {b["customer"]["email"] for b in bodies} | {b["customer"]["phone"] for b in bodies}
    leaks = []
    for path in logs:
        text = path.read_text(errors="replace")
        found = set(re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", text)) | set(re.findall(r"\+\d{7,15}", text))
        leaks += [(path.name, address) for address in sorted(found & addresses)]
    assert leaks == [], leaks[:10]
