"""Shared pieces of the benchmarks: a broker for the run, percentiles, the machine description, report sections."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "performance.md"

# The handler modules live in their function folders, as Lambda sees them.
for _folder in ("ingest", "fanout", "senders"):
    if str(ROOT / "functions" / _folder) not in sys.path:
        sys.path.insert(0, str(ROOT / "functions" / _folder))


@contextmanager
def kafka_for_bench() -> Iterator[str]:
    """``KAFKA_BOOTSTRAP_SERVERS`` if set, else a fresh single-node broker in a temporary folder."""
    from devstack.broker import KafkaBroker, wait_until_ready  # noqa: PLC0415

    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        wait_until_ready(given, timeout=60)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as data:
        broker = KafkaBroker(Path(data))
        bootstrap = broker.start(timeout=120)
        try:
            yield bootstrap
        finally:
            broker.stop()


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, {platform.system()}, "
        f"reference workload {reference_ms():.0f} ms"
    )


def reference_ms(rounds: int = 3) -> float:
    """CPU milliseconds of a fixed pure-Python workload (a loop, JSON, SHA-256), the least of ``rounds``.

    Machines that share one CPU model name differ in speed (shared hosts, clock limits); CPU figures of runs on
    different machines compare only through this: a figure divided by it is in the machine's own units.
    """
    payload = json.dumps([{"id": i, "name": f"item {i}", "price": i * 1.5} for i in range(2000)])
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        total = 0
        for i in range(1_000_000):
            total += i % 7
        for _ in range(20):
            hashlib.sha256(json.dumps(json.loads(payload)).encode()).hexdigest()
        best = min(best, time.process_time() - started)
    return best * 1000


def write_section(name: str, body: str, *, at_top: bool = False, report: Path = REPORT) -> None:
    """Replace the report section between ``<!-- bench:name -->`` markers, or add it (at the end, or first)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    header = "# Performance\n\nFigures from `make bench`.\n"
    text = report.read_text() if report.exists() else header
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    elif at_top and text.startswith(header):
        text = header + "\n" + block + "\n" + text[len(header) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    report.parent.mkdir(exist_ok=True)
    report.write_text(text)
