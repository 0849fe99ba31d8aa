"""Does an open delivery viewer slow the local stack? The local-stack benchmark with and without the page open.

    python -m bench.viewer [--count 400] [--pairs 3] [--concurrency 8] [--client browser|http]

One local stack (as ``bench.local_stack`` starts it, and with the viewer: ``StackConfig.viewer``; the viewer runs
in both cases, reading Kafka), warmed up, then rounds of ``--count`` purchases (email, SMS, Slack) alternating
without and with the viewer's list page open, in the order closed/open, open/closed, ... so that a drift of the
machine falls on both alike. "Open" is the page in Debian's chromium (headless, Playwright), polling as it does
for a person (``--client http`` polls the same URL with urllib instead, the viewer's server-side cost alone).
Compares the throughput (deliveries per second, first POST to last delivery) and latency of both; writes the
table to docs/performance.md between the ``bench:viewer`` markers.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Any

from bench.common import machine, percentile, write_section
from bench.local_stack import CHANNELS, Run, cpu_seconds, drive, warm_up
from devstack.stack import LocalStack, StackConfig
from viewer.app import POLL_MS, DeliveryViewer

CHROMIUM = "/usr/bin/chromium"


def process_tree(roots: set[int]) -> set[int]:
    """``roots`` and every process descending from one of them (Linux /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found = set(roots)
    while True:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        if not more:
            return found
        found |= more


def cpu_now(stack: LocalStack) -> dict[int, float]:
    """CPU seconds so far of this process (load generator, viewer), its descendants (the stack's processes,
    the browser) and the stack's processes that are not (a broker left running)."""
    return {pid: cpu_seconds(pid) for pid in process_tree({os.getpid(), *stack.processes().values()})}


def kind(pid: int, stack_pids: dict[int, str]) -> str:
    """Which part of the measurement a process is."""
    if pid == os.getpid():
        return "load generator + viewer"
    if pid in stack_pids:
        return {"moto": "moto", "kafka": "kafka", "dynamodb": "dynamodb"}.get(stack_pids[pid], "functions")
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        command = b""
    if not command:
        return "exited"  # e.g. the renderer of a page just closed
    return "browser" if b"chrom" in command or b"playwright" in command or b"node" in command else "other"


@dataclass
class Round:
    open: bool
    run: Run
    status_reads: int
    cpu: float  # CPU seconds of everything (stack, load generator, viewer, browser) during the round
    cpu_by_kind: dict[str, float]

    @property
    def cpu_ms_per_notification(self) -> float:
        return self.cpu * 1000 / max(1, len(self.run.accepted))

    @property
    def deliveries_per_second(self) -> float:
        last = max(self.run.delivered.values(), default=self.run.posted)
        return len(self.run.delivered) / (last - self.run.started)

    @property
    def accepted_per_second(self) -> float:
        return len(self.run.accepted) / (self.run.posted - self.run.started)

    @property
    def latencies(self) -> list[float]:
        return [when - self.run.accepted[nid] for (nid, _), when in self.run.delivered.items()]

    @property
    def complete(self) -> bool:
        return len(self.run.delivered) == len(self.run.accepted) * len(CHANNELS)


@contextmanager
def http_poller(url: str) -> Iterator[None]:
    """What the page's script does: fetch the live part every POLL_MS."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(POLL_MS / 1000):
            with urllib.request.urlopen(url, timeout=30) as response:
                response.read()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextmanager
def browser_page(browser: Any, url: str) -> Iterator[None]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url)
    try:
        yield
    finally:
        page.close()


def measure(stack: LocalStack, args: argparse.Namespace, browser: Any) -> list[Round]:
    assert stack.info is not None
    viewer = stack.viewer
    assert isinstance(viewer, DeliveryViewer)
    rounds: list[Round] = []
    for pair in range(args.pairs):
        for is_open in (False, True) if pair % 2 == 0 else (True, False):
            reads, cpu_before = viewer.board.reads, cpu_now(stack)
            if not is_open:
                run = drive(stack, args.count, args.concurrency, args.rate, args.timeout)
            elif args.client == "http":
                with http_poller(stack.info.viewer_url + "live"):
                    run = drive(stack, args.count, args.concurrency, args.rate, args.timeout)
            else:
                with browser_page(browser, stack.info.viewer_url):
                    run = drive(stack, args.count, args.concurrency, args.rate, args.timeout)
            cpu_after = cpu_now(stack)
            stack_pids = {pid: name.split("-")[0] for name, pid in stack.processes().items()}
            by_kind: dict[str, float] = {}
            for pid, seconds in cpu_after.items():
                part = kind(pid, stack_pids)
                by_kind[part] = by_kind.get(part, 0.0) + seconds - cpu_before.get(pid, 0.0)
            rounds.append(Round(is_open, run, viewer.board.reads - reads, sum(by_kind.values()), by_kind))
            print(
                f"round {len(rounds)} viewer {'open  ' if is_open else 'closed'}: "
                f"{rounds[-1].deliveries_per_second:.1f} deliveries/s, "
                f"{rounds[-1].accepted_per_second:.1f} accepted/s, "
                f"CPU {rounds[-1].cpu_ms_per_notification:.0f} ms/notification "
                f"({', '.join(f'{k} {v * 1000 / len(run.accepted):.0f}' for k, v in sorted(by_kind.items()))}), "
                f"status reads {rounds[-1].status_reads}",
                flush=True,
            )
            time.sleep(2)  # the last deliveries' status writes settle
    return rounds


def report(rounds: list[Round], args: argparse.Namespace) -> tuple[str, float, float]:
    closed = [r for r in rounds if not r.open]
    opened = [r for r in rounds if r.open]
    ratio = mean(r.deliveries_per_second for r in opened) / mean(r.deliveries_per_second for r in closed)
    cpu_ratio = mean(r.cpu_ms_per_notification for r in closed) / mean(r.cpu_ms_per_notification for r in opened)

    def row(name: str, group: list[Round]) -> str:
        latencies = [x for r in group for x in r.latencies]
        seconds = sum(r.run.posted - r.run.started for r in group)
        reads = sum(r.status_reads for r in group)
        return (
            f"| {name} | "
            + " / ".join(f"{r.deliveries_per_second:.1f}" for r in group)
            + f" (mean {mean(r.deliveries_per_second for r in group):.1f}) | "
            + " / ".join(f"{r.cpu_ms_per_notification:.0f}" for r in group)
            + f" (mean {mean(r.cpu_ms_per_notification for r in group):.0f}) | "
            f"{percentile(latencies, 50):.2f} s / {percentile(latencies, 99):.2f} s | {reads / seconds:.1f} |"
        )

    table = "\n".join(
        [
            "| viewer page | deliveries per second, each round | CPU ms per notification, each round "
            "| accept-to-delivery p50 / p99 | status reads by the viewer per second |",
            "| --- | --- | --- | --- | --- |",
            row("closed", closed),
            row(f"open ({args.client})", opened),
        ]
    )
    paced = f" --rate {args.rate:g}" if args.rate else ""
    lines = [
        "## Delivery viewer",
        "",
        f"Command: `python -m bench.viewer --count {args.count} --pairs {args.pairs} --concurrency {args.concurrency}"
        f" --client {args.client}{paced}` on {machine()}.",
        "One local stack; rounds of the local-stack benchmark (email, SMS, Slack per notification) alternate",
        "without and with the viewer's list page open"
        + (" in headless chromium" if args.client == "browser" else " (polled with urllib)")
        + f", which fetches its live part every {POLL_MS / 1000:g} s and reads",
        "status for the rows it shows (`viewer/feed.py`); the viewer's Kafka reader runs in both. CPU is",
        "that of every process involved (stack, load generator, viewer, browser): on a CPU-bound machine the",
        "throughput follows it, and unlike wall-clock rates it does not move with other work on the machine.",
        "",
        table,
        "",
        f"With the page open: throughput **{ratio:.1%}** of that without it (deliveries per second), CPU per",
        f"notification {1 / cpu_ratio:.1%} of it (so a CPU-bound stack keeps {cpu_ratio:.1%} of its throughput).",
        "Goal: at least 95 %.",
    ]
    return "\n".join(lines), ratio, cpu_ratio


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.viewer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=400, help="notifications per round")
    parser.add_argument("--pairs", type=int, default=3, help="pairs of rounds (closed and open)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--client", choices=("browser", "http"), default="browser")
    parser.add_argument("--rate", type=float, default=0.0, help="posts per second (0: as fast as answered)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--no-report", action="store_true", help="do not write docs/performance.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as data:
        config = StackConfig(
            data_dir=Path(data),
            api_port=0,
            broker_port=0,
            moto_port=0,
            slack_port=0,
            webhook_port=0,
            viewer=True,
            viewer_port=0,
            bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
        )
        print("starting the local stack ...", flush=True)
        with LocalStack(config, progress=lambda line: None) as stack:
            warm_up(stack)
            if args.client == "browser":
                from playwright.sync_api import sync_playwright  # noqa: PLC0415 - a dev dependency

                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
                    try:
                        rounds = measure(stack, args, browser)
                    finally:
                        browser.close()
            else:
                rounds = measure(stack, args, None)
    text, ratio, cpu_ratio = report(rounds, args)
    print(text)
    met = "met" if min(ratio, cpu_ratio) >= 0.95 else "NOT met"
    print(f"goal (open >= 95 % of closed): {met}; throughput {ratio:.1%}, by CPU {cpu_ratio:.1%}")
    if not args.no_report:
        write_section("viewer", text)
    return 0 if all(r.complete for r in rounds) else 1


if __name__ == "__main__":
    raise SystemExit(main())
