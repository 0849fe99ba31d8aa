"""Sustained throughput and accept-to-delivery latency of the whole local stack (``python -m devstack up``).

    python -m bench.local_stack [--count 2000] [--concurrency 8] [--environments N] [--rate 0] [--timeout 600]

Starts the local stack on free ports in a temporary data dir (``KAFKA_BOOTSTRAP_SERVERS`` points it at an existing
cluster), warms it up, then posts ``--count`` purchases asking for three channels (email, SMS, Slack) over HTTP
from ``--concurrency`` clients, as fast as they are answered (or at ``--rate`` per second), with
``--environments`` execution environments per function (``python -m devstack up --concurrency``). A delivery is the
sender's ``"delivered"`` log line (written after the provider accepted the message); its latency is measured
from the moment the client got the 202. Prints a table and writes it to docs/performance.md between the
``bench:local_stack`` markers (other sections are left alone).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.common import ROOT, machine, percentile, write_section
from devstack import call_counts
from devstack.demo import sample_purchase
from devstack.stack import INGEST_ENVIRONMENTS, LocalStack, free_ports_config

CHANNELS = ("email", "sms", "slack")
# The measured counts of a run, by label (--calls-label), read by bench.cost.
RESULTS = ROOT / "bench" / "results"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (Linux /proc/stat; 0 elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


BENCHMARK = "benchmark clients"
STACK_PROCESS = "stack process (local SES, SNS hook, receivers)"


def cpu_group(name: str) -> str:
    if name in ("moto", "kafka", "dynamodb"):
        return {"moto": "moto server", "kafka": "Kafka broker", "dynamodb": "DynamoDB (dynalite)"}[name]
    return "senders" if "Sender" in name else name.split("-", maxsplit=1)[0].removesuffix("Function").lower()


@dataclass
class Run:
    accepted: dict[str, float] = field(default_factory=dict)  # notification id -> wall time of the 202
    post_ms: list[float] = field(default_factory=list)
    rejected: dict[int, int] = field(default_factory=dict)  # status -> count
    delivered: dict[tuple[str, str], float] = field(default_factory=dict)  # (id, channel) -> wall time
    started: float = 0.0
    posted: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # process group -> CPU seconds during the run
    duplicates: int = 0  # "delivered" lines beyond the first for one (notification, channel)
    others_share: float = 0.0  # share of the machine's CPU that other processes used during the run
    client_cpu: float = 0.0  # CPU seconds of the benchmark's own threads (posting, reading the logs)
    log_bytes: int = 0  # written to the functions' logs during the run (CloudWatch Logs ingests as much)
    # function logical id -> {"aws_calls": {kind: n}, "invocations": n, "invocation_seconds": s} during the run
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)


class Client:
    """One shop backend: a kept-alive HTTP/1.1 connection to the API (as an HTTP client library keeps one), opened
    again when the server closed it; the resend carries the same Idempotency-Key, so it is harmless."""

    def __init__(self, api: str) -> None:
        parts = urlsplit(api)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._connection: http.client.HTTPConnection | None = None

    def post(self, body: dict[str, object]) -> int:
        payload = json.dumps(body).encode()
        headers = {"content-type": "application/json", "Idempotency-Key": str(body["id"])}
        try:
            return self._exchange(payload, headers)
        except (http.client.HTTPException, OSError):  # the server closed the kept connection meanwhile
            return self._exchange(payload, headers)

    def _exchange(self, payload: bytes, headers: dict[str, str]) -> int:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
        try:
            self._connection.request("POST", "/v1/notifications", body=payload, headers=headers)
            response = self._connection.getresponse()
            response.read()
        except (http.client.HTTPException, OSError):
            self._close()
            raise
        if response.will_close:
            self._close()
        return int(response.status)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class DeliveryLog:
    """``"delivered"`` entries of the senders' logs, read incrementally."""

    def __init__(self, logs_dir: Path) -> None:
        self._positions = {path: path.stat().st_size for path in logs_dir.glob("*SenderFunction*.log")}
        self._partial = dict.fromkeys(self._positions, b"")
        self.duplicates = 0

    def read(self, into: dict[tuple[str, str], float], wanted: set[str]) -> None:
        for path, position in self._positions.items():
            with path.open("rb") as handle:
                handle.seek(position)
                data = handle.read()
            self._positions[path] = position + len(data)
            lines = (self._partial[path] + data).split(b"\n")
            self._partial[path] = lines.pop()
            for line in lines:
                if b'"delivered"' not in line:
                    continue
                entry = json.loads(line)
                if entry.get("message") == "delivered" and entry.get("notification_id") in wanted:
                    when = datetime.strptime(entry["timestamp"], "%Y-%m-%d %H:%M:%S,%f%z").timestamp()
                    key = (entry["notification_id"], entry["channel"])
                    if key in into:
                        self.duplicates += 1
                    into.setdefault(key, when)


def function_log_bytes(logs_dir: Path) -> int:
    return sum(path.stat().st_size for path in logs_dir.glob("*Function*.log"))


def counts_by_function(directory: Path | None) -> dict[str, dict[str, Any]]:
    """The call counts of every function process so far, summed per function (its environments together)."""
    totals: dict[str, dict[str, Any]] = {}
    for snapshot in (call_counts.read(directory) if directory else {}).values():
        total = totals.setdefault(snapshot["function"], {"aws_calls": {}, "invocations": 0, "invocation_seconds": 0.0})
        for kind, n in snapshot["aws_calls"].items():
            total["aws_calls"][kind] = total["aws_calls"].get(kind, 0) + n
        total["invocations"] += snapshot["invocations"]
        total["invocation_seconds"] += snapshot["invocation_seconds"]
    return totals


def counts_between(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    diff: dict[str, dict[str, Any]] = {}
    for function, total in after.items():
        base = before.get(function, {"aws_calls": {}, "invocations": 0, "invocation_seconds": 0.0})
        calls = {k: n - base["aws_calls"].get(k, 0) for k, n in total["aws_calls"].items()}
        diff[function] = {
            "aws_calls": {k: n for k, n in sorted(calls.items()) if n},
            "invocations": total["invocations"] - base["invocations"],
            "invocation_seconds": total["invocation_seconds"] - base["invocation_seconds"],
        }
    return diff


def drive(stack: LocalStack, count: int, concurrency: int, rate: float, timeout: float) -> Run:
    assert stack.info is not None
    api, logs = stack.info.api_url, DeliveryLog(Path(stack.info.logs_dir))
    bodies = [sample_purchase(i, CHANNELS) for i in range(count)]
    wanted = {str(b["id"]) for b in bodies}
    run, lock = Run(), threading.Lock()
    clients = threading.local()

    def one(index: int) -> None:
        if rate > 0:
            time.sleep(max(0.0, run.started + index / rate - time.time()))
        began, cpu = time.perf_counter(), time.thread_time()
        if not hasattr(clients, "client"):
            clients.client = Client(api)
        status = clients.client.post(bodies[index])
        now = time.time()
        with lock:
            run.client_cpu += time.thread_time() - cpu
            run.post_ms.append((time.perf_counter() - began) * 1000)
            if status == 202:
                run.accepted[str(bodies[index]["id"])] = now
            else:
                run.rejected[status] = run.rejected.get(status, 0) + 1

    def read_logs() -> None:
        cpu = time.thread_time()
        logs.read(run.delivered, wanted)
        with lock:
            run.client_cpu += time.thread_time() - cpu

    counts_dir = stack.config.call_counts_dir
    time.sleep(2 * call_counts.INTERVAL_SECONDS)  # the last snapshots of what came before
    counts_before = counts_by_function(counts_dir)
    logs_dir = Path(stack.info.logs_dir)
    log_bytes_before = function_log_bytes(logs_dir)
    processes = stack.processes()
    cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    busy_before, own_before = machine_busy_seconds(), time.process_time()
    run.started = time.time()
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(one, i) for i in range(count)]
        while not all(f.done() for f in futures):
            read_logs()
            time.sleep(0.2)
        for future in futures:
            future.result()
    run.posted = time.time()
    expected = len(run.accepted) * len(CHANNELS)
    while len(run.delivered) < expected and time.monotonic() < deadline:
        read_logs()
        time.sleep(0.2)
    read_logs()
    settle(counts_dir, deadline)
    run.duplicates = logs.duplicates
    run.log_bytes = function_log_bytes(logs_dir) - log_bytes_before
    for name, pid in processes.items():
        group = cpu_group(name)
        run.cpu[group] = run.cpu.get(group, 0.0) + cpu_seconds(pid) - cpu_before[name]
    # This process is the benchmark's clients and reader of the logs (their threads' CPU, counted above) and the
    # stack itself: the local SES, the SNS hook, the Slack and webhook receivers.
    run.cpu[BENCHMARK] = run.client_cpu
    run.cpu[STACK_PROCESS] = time.process_time() - own_before - run.client_cpu
    others = machine_busy_seconds() - busy_before - sum(run.cpu.values())
    run.others_share = max(0.0, others) / ((time.time() - run.started) * (os.cpu_count() or 1))
    time.sleep(3 * call_counts.INTERVAL_SECONDS)
    run.functions = counts_between(counts_before, counts_by_function(counts_dir))
    return run


def settle(counts_dir: Path | None, deadline: float) -> None:
    """Wait until no function makes AWS calls any more: provider feedback (the SES events, the SMS delivery logs)
    arrives after the deliveries, and its work belongs to the run."""
    previous = None
    while time.monotonic() < deadline:
        time.sleep(3 * call_counts.INTERVAL_SECONDS)
        current = counts_by_function(counts_dir)
        if current == previous:
            return
        previous = current


def warm_up(stack: LocalStack) -> None:
    """A few notifications end to end, so cold starts and group joins are not measured."""
    drive(stack, 10, 4, 0, 120)


def describe_environments(environments: int | None) -> str:
    if environments is None:
        return f"the stack's default: {INGEST_ENVIRONMENTS} for the ingest (one port), one per partition for Kafka"
    return f"{environments} (ingest: one port; Kafka: one consumer group, at most one per partition)"


def report(run: Run, count: int, concurrency: int, rate: float, environments: int | None) -> str:
    delivered = list(run.delivered.items())
    latencies = [when - run.accepted[nid] for (nid, _), when in delivered if nid in run.accepted]
    per_notification: dict[str, float] = {}
    per_channel: dict[str, int] = {}
    for (nid, channel), when in delivered:
        per_notification[nid] = max(per_notification.get(nid, 0.0), when - run.accepted.get(nid, when))
        per_channel[channel] = per_channel.get(channel, 0) + 1
    stack_cpu = {group: seconds for group, seconds in run.cpu.items() if group != BENCHMARK}
    complete = [per_notification[nid] for nid in run.accepted if all((nid, c) in run.delivered for c in CHANNELS)]
    accept_seconds = run.posted - run.started
    last = max((when for _, when in delivered), default=run.posted)
    deliver_seconds = last - run.started
    rows = [
        ("execution environments per function", describe_environments(environments)),
        (
            "notifications posted",
            f"{count} ({', '.join(CHANNELS)}), {concurrency} clients"
            + (f", paced at {rate:g}/s" if rate > 0 else ", as fast as answered"),
        ),
        ("accepted (202)", f"{len(run.accepted)}" + (f", other answers {run.rejected}" if run.rejected else "")),
        ("accepted per second", f"{len(run.accepted) / accept_seconds:.0f} notifications/s"),
        ("POST round trip p50 / p99", f"{percentile(run.post_ms, 50):.0f} ms / {percentile(run.post_ms, 99):.0f} ms"),
        (
            "deliveries",
            f"{len(delivered)} of {len(run.accepted) * len(CHANNELS)} "
            f"({', '.join(f'{c} {n}' for c, n in sorted(per_channel.items()))})",
        ),
        (
            "delivered per second (first POST to last delivery)",
            f"{len(delivered) / deliver_seconds:.0f} deliveries/s = {len(complete) / deliver_seconds:.0f} notifications/s",
        ),
        (
            "accept-to-delivery, per delivery p50 / p99",
            f"{percentile(latencies, 50):.2f} s / {percentile(latencies, 99):.2f} s",
        ),
        (
            "accept-to-delivery, all 3 channels p50 / p99",
            f"{percentile(complete, 50):.2f} s / {percentile(complete, 99):.2f} s",
        ),
        (
            "lost / duplicated",
            f"{len(run.accepted) * len(CHANNELS) - len(delivered)} / {run.duplicates}",
        ),
        (
            "CPU per accepted notification, all of the stack but the broker (not the benchmark's clients)",
            f"{sum(s for g, s in stack_cpu.items() if g != 'Kafka broker') * 1000 / max(1, len(run.accepted)):.1f} ms",
        ),
        (
            "CPU per accepted notification, by process",
            ", ".join(
                f"{group} {seconds * 1000 / max(1, len(run.accepted)):.0f} ms"
                for group, seconds in sorted(run.cpu.items(), key=lambda item: -item[1])
            ),
        ),
        (
            "machine's CPU used by other processes during the run",
            f"{run.others_share:.0%} of {os.cpu_count()} cores",
        ),
    ]
    return "\n".join(["| figure | value |", "| --- | --- |", *(f"| {name} | {value} |" for name, value in rows)])


def calls_table(run: Run) -> str:
    """AWS calls per accepted notification, by function and kind (botocore ``before-call`` counts)."""
    n = max(1, len(run.accepted))
    lines = [
        "| function | invocations per notification | mean invocation | AWS calls per notification, by kind (`.items`: items in batches) | total |",
        "| --- | --- | --- | --- | --- |",
    ]
    grand = 0
    for function, total in sorted(run.functions.items()):
        calls = total["aws_calls"]
        if not calls and not total["invocations"]:
            continue
        mean = total["invocation_seconds"] * 1000 / max(1, total["invocations"])
        kinds = ", ".join(f"{kind} {count / n:.2f}" for kind, count in sorted(calls.items())) or "none"
        requests = sum(count for kind, count in calls.items() if not kind.endswith(".items"))
        grand += requests
        lines.append(f"| {function} | {total['invocations'] / n:.3f} | {mean:.1f} ms | {kinds} | {requests / n:.2f} |")
    lines.append(f"| all functions | | | function logs: {run.log_bytes / n:.0f} bytes | {grand / n:.2f} |")
    return "\n".join(lines)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], check=False, cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def calls_section(label: str, command: str, table: str, calls: str) -> str:
    return "\n".join(
        [
            f"## AWS calls per notification ({label})",
            "",
            f"Command: `{command}` at commit {git_commit()}, on {machine()}.",
            "Counted, not estimated: every function process of the local stack registers a botocore `before-call`",
            "handler on each client it creates (`devstack.call_counts`), so each API request is counted once, by",
            "service and operation, before any retry. The counts are divided by the accepted notifications (three",
            "channels each: email, SMS, Slack). Invocations and their mean duration are the handler's own, timed",
            "in the same process (Lambda bills that duration).",
            "",
            calls,
            "",
            "The run these counts come from:",
            "",
            table,
        ]
    )


def save_calls(run: Run, command: str, label: str) -> None:
    """The measured counts, for ``python -m bench.cost``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "command": command,
        "machine": machine(),
        "channels": list(CHANNELS),
        "accepted": len(run.accepted),
        "log_bytes": run.log_bytes,
        "commit": git_commit(),
        "functions": run.functions,
    }
    (RESULTS / f"aws_calls_{label}.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def section(command: str, table: str) -> str:
    """The docs/performance.md section for one run."""
    return "\n".join(
        [
            "## Local stack",
            "",
            f"Command: `{command}` on {machine()}.",
            "The whole stack of `python -m devstack up` (real Kafka broker, DynamoDB in dynalite, SES, SNS and",
            "Secrets Manager in moto, every function in its own process behind local API Gateway and Kafka",
            "event-source mappings with the template's batch sizes and 1 s batching windows). The clients keep their",
            "connections alive. Latency is from the client's 202 to the sender's \"delivered\" log line; under a",
            "burst it includes the time spent queued in Kafka. The run ends once provider feedback is done too.",
            "Goals: at least 100 notifications/s accepted and delivered, POST p50 at most 50 ms, CPU per",
            "notification (the stack's processes but the broker; not the benchmark's clients) at most 40 ms, nothing",
            "lost or duplicated. The last row says how much of the machine other processes took during the run:",
            "rates and latencies compare only between runs with little of it; CPU per notification is counted per",
            "process and holds better, and compares across machines through the reference workload's time.",
            '"What limits the local stack" below reads the figures.',
            "",
            table,
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.local_stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8, help="HTTP clients posting at the same time")
    parser.add_argument(
        "--environments",
        type=int,
        default=None,
        help="execution environments per function (default: the stack's, as Lambda scales out)",
    )
    parser.add_argument("--rate", type=float, default=0.0, help="posts per second (0: as fast as answered)")
    parser.add_argument("--timeout", type=float, default=600.0, help="upper bound for the whole run in seconds")
    parser.add_argument("--no-report", action="store_true", help="do not write docs/performance.md")
    parser.add_argument(
        "--calls-label",
        default="current",
        help="the AWS call counts go to the section bench:aws_calls_<label> (e.g. before, after)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as data:
        config = free_ports_config(
            Path(data),
            bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            concurrency=args.environments,
            call_counts_dir=Path(data) / "calls",
        )
        print("starting the local stack ...", flush=True)
        with LocalStack(config, progress=lambda line: None) as stack:
            warm_up(stack)
            print(f"posting {args.count} notifications ...", flush=True)
            run = drive(stack, args.count, args.concurrency, args.rate, args.timeout)
    table = report(run, args.count, args.concurrency, args.rate, args.environments)
    calls = calls_table(run)
    print(table)
    print(calls)
    complete = (
        len(run.delivered) == len(run.accepted) * len(CHANNELS) and len(run.accepted) == args.count
    ) and not run.duplicates
    if not args.no_report:
        command = f"python -m bench.local_stack --count {args.count} --concurrency {args.concurrency}"
        if args.environments is not None:
            command += f" --environments {args.environments}"
        if args.rate:
            command += f" --rate {args.rate:g}"
        write_section("local_stack", section(command, table))
        write_section(f"aws_calls_{args.calls_label}", calls_section(args.calls_label, command, table, calls))
        save_calls(run, command, args.calls_label)
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
