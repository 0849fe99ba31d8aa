"""Deliveries per second of one partition through the sender handler, with realistic latencies injected.

The provider call takes ``--provider-ms`` (50 ms) and every store call (status and idempotency) ``--store-ms``
(8 ms), as sleeps, so the figure measures how the sender overlaps waiting, not this machine's CPU. Two runs:
the channel's rate unlimited, and limited to ``--rate`` R per second; for the limited run the busiest
one-second window of provider calls is reported too (it must never exceed R).

    python -m bench.delivery [--records 1000] [--rate 50] [--batch 100]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import threading
import time
import warnings
from typing import Any

from bench.common import machine, write_section

ARN = "arn:aws:kafka:us-east-1:123456789012:cluster/bench/abc-1"


def _sleep_ms(ms: float) -> None:
    if ms:
        time.sleep(ms / 1000)


def run(records: int, batch: int, rate: float | None, provider_ms: float, store_ms: float) -> dict[str, float]:
    import sender_handler  # noqa: PLC0415

    from devstack.lambda_context import LocalLambdaContext  # noqa: PLC0415
    from devstack.msk_events import build_event  # noqa: PLC0415
    from notifications import delivery  # noqa: PLC0415
    from notifications.channels.base import Receipt  # noqa: PLC0415
    from notifications.contracts.envelopes import ChannelMessage  # noqa: PLC0415
    from notifications.contracts.keys import NotificationRef  # noqa: PLC0415
    from notifications.registry import Channel  # noqa: PLC0415
    from notifications.settings import SenderSettings  # noqa: PLC0415
    from tests.channel_support import channel_message, message_record  # noqa: PLC0415
    from tests.support import InMemoryStatusStore, MemoryPublisher, busiest_second  # noqa: PLC0415

    calls: list[float] = []
    lock = threading.Lock()

    class SlowProvider:
        channel = Channel("email")

        def send(self, message: ChannelMessage) -> Receipt:
            with lock:
                calls.append(time.monotonic())  # when the request reaches the provider
            _sleep_ms(provider_ms)
            return Receipt(provider_message_id="bench")

    class SlowStatus(InMemoryStatusStore):
        """Every store call (the send's claim, its outcome) takes ``store_ms``."""

        def claim_send(self, notification_id: NotificationRef, channel: Channel, lease_seconds: float) -> Any:
            _sleep_ms(store_ms)
            return super().claim_send(notification_id, channel, lease_seconds)

        def record_sent(
            self, notification_id: NotificationRef, channel: Channel, provider_message_id: str | None
        ) -> None:
            _sleep_ms(store_ms)
            super().record_sent(notification_id, channel, provider_message_id)

        def record_failure(
            self, notification_id: NotificationRef, channel: Channel, reason: str, *, final: bool
        ) -> None:
            _sleep_ms(store_ms)
            super().record_failure(notification_id, channel, reason, final=final)

    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "CHANNEL": "email",
        "STATUS_TABLE_NAME": "status",
        "IDEMPOTENCY_TABLE_NAME": "idempotency",
        "TOPIC_PARTITIONS": "1",
    }
    if rate:
        env["SEND_RATE_PER_SECOND"] = str(rate)
    service = delivery.DeliveryService(
        settings=SenderSettings.from_env(env),
        sender=SlowProvider(),
        status=SlowStatus(),
        publisher=MemoryPublisher(),
    )
    sender_handler.delivery_runtime = lambda: service  # type: ignore[attr-defined,assignment]
    messages = [channel_message(Channel("email")) for _ in range(records)]
    kafka_records = [message_record(m, i) for i, m in enumerate(messages)]
    events = [
        build_event(kafka_records[start : start + batch], bootstrap_servers="b:9098", event_source_arn=ARN)
        for start in range(0, records, batch)
    ]
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        for event in events:
            result = sender_handler.handler(event, LocalLambdaContext("sender", timeout_seconds=900))
            assert not result["batchItemFailures"], result
    elapsed = time.perf_counter() - started
    assert len(calls) == records, f"{len(calls)} provider calls for {records} records"
    return {"rps": records / elapsed, "peak_1s": busiest_second(calls)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--provider-ms", type=float, default=50.0)
    parser.add_argument("--store-ms", type=float, default=8.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    warnings.filterwarnings("ignore")
    latency = {"provider_ms": args.provider_ms, "store_ms": args.store_ms}
    unlimited = run(args.records, args.batch, None, **latency)
    limited_records = max(50, min(args.records, int(args.rate * 8)))
    limited = run(limited_records, args.batch, args.rate, **latency)
    print(f"unlimited: {unlimited['rps']:7.1f} deliveries/s per partition (goal >= 200)")
    print(
        f"rate {args.rate:g}/s: {limited['rps']:7.1f} deliveries/s (goal >= {0.9 * args.rate:.1f}), "
        f"busiest second {limited['peak_1s']:.0f} calls (goal <= {args.rate:g})"
    )
    write_section(
        "delivery",
        f"""
## Sender throughput per partition

Command: `python -m bench.delivery --records {args.records} --batch {args.batch} --rate {args.rate:g}` on {machine()}.
Injected latency: provider call {args.provider_ms:g} ms, each status or idempotency store call {args.store_ms:g} ms
(sleeps; in-memory stores otherwise). One partition, batches of {args.batch}, as the event-source mapping delivers them.
Baseline: the sender as it was before concurrent sends (one record at a time through Powertools' `BatchProcessor`)
delivered 13.0 per second per partition with the same script and latencies (provider call plus three store calls).

| run | deliveries/s per partition | busiest one-second window | goal |
| --- | --- | --- | --- |
| rate unlimited, {args.records} records | {unlimited["rps"]:.1f} | {unlimited["peak_1s"]:.0f} calls | >= 200/s |
| rate {args.rate:g}/s, {limited_records} records | {limited["rps"]:.1f} | {limited["peak_1s"]:.0f} calls | >= {0.9 * args.rate:.1f}/s, never more than {args.rate:g} in a second |
""",
    )


if __name__ == "__main__":
    main()
