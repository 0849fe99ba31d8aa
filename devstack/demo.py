"""Post sample purchases to the running API and show what happened to each channel.

    python -m devstack demo [--count N]

Each purchase is posted like a shop would (``POST /v1/notifications`` with an ``Idempotency-Key``); then
``GET /v1/notifications/{id}`` is polled until every channel is final (sent, failed or dead). The first purchase
is posted a second time with the same key to show that a client retry is answered again, not sent again.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

# Past "accepted": handed to the provider (and maybe its feedback since), or failed.
FINAL_STATES = frozenset({"sent", "delivered", "bounced", "complained", "undeliverable", "failed"})
DELIVERED_STATES = frozenset({"sent", "delivered"})
_PEOPLE = [
    ("Ada", "Lovelace"),
    ("Grace", "Hopper"),
    ("Alan", "Turing"),
    ("Katherine", "Johnson"),
    ("Edsger", "Dijkstra"),
]
_ITEMS = [("SKU-COFFEE", "Coffee beans", "24.95"), ("SKU-MUG", "Mug", "9.50"), ("SKU-GRINDER", "Hand grinder", "59.00")]


def sample_purchase(
    number: int, channels: Sequence[str], rng: random.Random | None = None, push_endpoints: Sequence[str] = ()
) -> dict[str, Any]:
    """A valid ``POST /v1/notifications`` body for the given channels; the customer's app is on one of
    ``push_endpoints`` (the local stack's demo devices) when there are any."""
    rng = rng or random.Random()  # noqa: S311 - sample data
    first, last = _PEOPLE[number % len(_PEOPLE)]
    picked = rng.sample(_ITEMS, k=rng.randint(1, len(_ITEMS)))
    lines = [(sku, name, price, rng.randint(1, 3)) for sku, name, price in picked]
    items = [{"sku": sku, "name": name, "quantity": qty, "unit_price": price} for sku, name, price, qty in lines]
    total = sum((Decimal(price) * qty for _, _, price, qty in lines), Decimal(0))
    return {
        "id": str(uuid.uuid4()),
        "purchase": {
            "order_id": f"A-{uuid.uuid4().hex[:8].upper()}",
            "purchased_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "currency": "EUR",
            "total": f"{total:.2f}",
            "items": items,
        },
        "customer": {
            "id": f"c-{number}",
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}@example.com",
            "phone": f"+49151{rng.randint(10_000_000, 99_999_999)}",
            **({"push_endpoint": push_endpoints[number % len(push_endpoints)]} if push_endpoints else {}),
        },
        "channels": list(channels),
        "locale": "en",
    }


def request(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One JSON request; answers the status and the decoded body (HTTP errors are answers, not exceptions)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(  # noqa: S310 - the local API over http
        url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310 - the local API
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode("utf-8", "replace")


@dataclass
class DemoResult:
    notification_id: str
    order_id: str
    accepted_at: float
    status: int
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished_at: float | None = None

    @property
    def delivered(self) -> bool:
        return bool(self.channels) and all(c.get("state") in DELIVERED_STATES for c in self.channels.values())


def run_demo(
    api_url: str,
    channels: Sequence[str],
    *,
    count: int = 3,
    timeout: float = 60.0,
    out: Callable[[str], None] = print,
    push_endpoints: Sequence[str] = (),
) -> list[DemoResult]:
    out(f"demo: posting {count} purchase(s) to {api_url}/v1/notifications (channels: {', '.join(channels)})")
    results: list[DemoResult] = []
    first_body: dict[str, Any] | None = None
    for number in range(count):
        body = sample_purchase(number, channels, push_endpoints=push_endpoints)
        first_body = first_body or body
        status, answer = request("POST", f"{api_url}/v1/notifications", body, {"Idempotency-Key": body["id"]})
        result = DemoResult(body["id"], body["purchase"]["order_id"], time.monotonic(), status)
        results.append(result)
        customer = body["customer"]["name"]
        out(f"  {status} {body['id']} order {result.order_id} for {customer}, {body['purchase']['total']} EUR")
        if status != 202:
            out(f"     answer: {json.dumps(answer)}")
    if first_body is not None:
        status, again = request(
            "POST", f"{api_url}/v1/notifications", first_body, {"Idempotency-Key": first_body["id"]}
        )
        same = "the same answer, nothing sent twice" if status == 202 and again.get("id") == first_body["id"] else again
        out(f"  {status} client retry of {first_body['id']} with the same Idempotency-Key: {same}")
    out("demo: waiting for every channel to be sent (GET /v1/notifications/{id}) ...")
    deadline = time.monotonic() + timeout
    pending = [r for r in results if r.status == 202]
    while pending and time.monotonic() < deadline:
        for result in list(pending):
            status, answer = request("GET", f"{api_url}/v1/notifications/{result.notification_id}")
            if status != 200:
                continue
            result.channels = {c["channel"]: c for c in answer.get("channels", [])}
            if set(result.channels) >= set(channels) and all(
                c.get("state") in FINAL_STATES for c in result.channels.values()
            ):
                result.finished_at = time.monotonic()
                pending.remove(result)
                took = result.finished_at - result.accepted_at
                states = "  ".join(
                    f"{name} {c['state']}" + (f" ({c.get('last_error')})" if c.get("last_error") else "")
                    for name, c in sorted(result.channels.items())
                )
                out(f"  {result.notification_id}  {states}  after {took:.1f}s")
        if pending:
            time.sleep(0.25)
    for result in pending:
        states = ", ".join(f"{n} {c.get('state')}" for n, c in sorted(result.channels.items())) or "no status yet"
        out(f"  {result.notification_id}  still pending after {timeout:.0f}s: {states}")
    delivered = sum(r.delivered for r in results)
    out(f"demo: {delivered}/{len(results)} delivered on every channel; `python -m devstack tail` follows deliveries")
    return results
