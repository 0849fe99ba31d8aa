"""Cost of one DynamoDB call on the local stack's candidate servers: the moto server and dynalite (on LevelDB).

    python -m bench.store_calls [--calls 400]

Both servers run on 127.0.0.1 side by side in the same run, each with the project's tables
(``devstack.aws_resources.create_tables``), and the same boto3 client code calls each the same way: the calls
the functions make (a conditional PutItem, an UpdateItem appending to a status history, GetItem, Query of one
notification's rows, a BatchWriteItem of four rows). For each server and call kind: the server process's CPU per
call (user + system, from /proc), the client's CPU per call, and the round trip p50. Writes the table to
docs/performance.md between the ``bench:store_calls`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import machine, percentile, write_section
from bench.local_stack import cpu_seconds
from devstack import aws_resources, dynamodb_local
from devstack.ports import free_port
from devstack.stack import DUMMY_CREDENTIALS, REGION, _spawn, _wait_ready_line

STATUS = aws_resources.STATUS_TABLE


@contextmanager
def moto_server() -> Iterator[tuple[str, int]]:
    port = free_port()
    with open(os.devnull, "wb") as log:
        args = ["-m", "devstack.stack", "moto-server", "--port", str(port)]
        child, fd = _spawn(args, env=os.environ, log=log, stop_timeout=10)
    try:
        _wait_ready_line(child, fd, 60, "moto server")
        assert child.process is not None
        yield f"http://127.0.0.1:{port}", child.process.pid
    finally:
        child.stop()


@contextmanager
def dynalite_server(data: Path) -> Iterator[tuple[str, int]]:
    dynamodb_local.install()
    proc = subprocess.Popen(dynamodb_local.command(0, data), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = json.loads(proc.stdout.readline())["port"]
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def client(endpoint: str) -> Any:
    import boto3  # noqa: PLC0415

    return boto3.session.Session(
        region_name=REGION,
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ).client("dynamodb", endpoint_url=endpoint)


def operations(ddb: Any) -> dict[str, Callable[[int], None]]:
    """One call of each kind; ``i`` picks the item."""
    run = uuid.uuid4().hex[:8]

    def key(i: int, channel: str = "email") -> dict[str, Any]:
        return {"notification_id": {"S": f"caller/{run}-{i}"}, "channel": {"S": channel}}

    def put(i: int) -> None:
        ddb.put_item(
            TableName=STATUS,
            Item={**key(i), "state": {"S": "accepted"}, "customer_id": {"S": "c-1"}, "expires_at": {"N": "1"}},
            ConditionExpression="attribute_not_exists(notification_id)",
        )

    def update(i: int) -> None:
        ddb.update_item(
            TableName=STATUS,
            Key=key(i),
            UpdateExpression="SET #s = :s, history = list_append(if_not_exists(history, :empty), :events)",
            ConditionExpression="attribute_exists(notification_id)",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={
                ":s": {"S": "sent"},
                ":empty": {"L": []},
                ":events": {"L": [{"M": {"event": {"S": "sent"}, "at": {"S": "2026-01-01T00:00:00Z"}}}]},
            },
        )

    def get(i: int) -> None:
        ddb.get_item(TableName=STATUS, Key=key(i))

    def query(i: int) -> None:
        ddb.query(
            TableName=STATUS,
            KeyConditionExpression="notification_id = :id",
            ExpressionAttributeValues={":id": key(i)["notification_id"]},
        )

    def batch(i: int) -> None:
        ddb.batch_write_item(
            RequestItems={
                STATUS: [
                    {"PutRequest": {"Item": {**key(i, f"batch-{c}"), "state": {"S": "accepted"}}}} for c in range(4)
                ]
            }
        )

    return {"PutItem": put, "UpdateItem": update, "GetItem": get, "Query": query, "BatchWriteItem (4 rows)": batch}


def user_agent_cost(endpoint: str, calls: int, rounds: int = 5) -> tuple[float, float]:
    """Client CPU ms per UpdateItem: a client with the SDK's per-request User-Agent and the functions' own
    (``notifications.aws``, its User-Agent fixed once), alternating rounds; the median round of each."""
    from notifications import aws  # noqa: PLC0415

    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    for name, value in DUMMY_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    aws.client.cache_clear()

    def update(ddb: Any) -> Callable[[int], None]:
        def call(i: int) -> None:
            ddb.update_item(
                TableName=STATUS,
                Key={"notification_id": {"S": f"caller/agent-{i % 50}"}, "channel": {"S": "email"}},
                UpdateExpression="SET #s = :s",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":s": {"S": "sent"}},
            )

        return call

    updates = {"sdk": update(client(endpoint)), "fixed": update(aws.client("dynamodb"))}
    cost: dict[str, list[float]] = {name: [] for name in updates}
    for call in updates.values():
        for i in range(20):
            call(i)
    for _ in range(rounds):
        for name, call in updates.items():
            began = time.process_time()
            for i in range(calls):
                call(i)
            cost[name].append((time.process_time() - began) * 1000 / calls)
    return percentile(cost["sdk"], 50), percentile(cost["fixed"], 50)


def measure(endpoint: str, pid: int, calls: int) -> dict[str, tuple[float, float, float]]:
    """Call kind -> (server CPU ms per call, client CPU ms per call, round trip p50 ms)."""
    ddb = client(endpoint)
    aws_resources.create_tables(ddb)
    found: dict[str, tuple[float, float, float]] = {}
    for name, call in operations(ddb).items():
        for i in range(20):  # warm-up (connections, code paths)
            call(calls + i)
        server_before, client_before = cpu_seconds(pid), time.process_time()
        rounds = []
        for i in range(calls):
            began = time.perf_counter()
            call(i)
            rounds.append((time.perf_counter() - began) * 1000)
        server = (cpu_seconds(pid) - server_before) * 1000 / calls
        own = (time.process_time() - client_before) * 1000 / calls
        found[name] = (server, own, percentile(rounds, 50))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store_calls", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400, help="calls of each kind per server")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as data:
        with moto_server() as (endpoint, pid):
            results["moto server (memory)"] = measure(endpoint, pid, args.calls)
        with dynalite_server(Path(data)) as (endpoint, pid):
            results["dynalite (LevelDB on disk)"] = measure(endpoint, pid, args.calls)
            sdk_agent, fixed_agent = user_agent_cost(endpoint, args.calls)
    lines = [
        "| server | call | server CPU per call | client (boto3) CPU per call | round trip p50 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for server, kinds in results.items():
        for kind, (cpu, own, p50) in kinds.items():
            lines.append(f"| {server} | {kind} | {cpu:.2f} ms | {own:.2f} ms | {p50:.2f} ms |")
    agent_line = (
        f"Client CPU per UpdateItem, median of 5 alternating rounds: {sdk_agent:.2f} ms with botocore's User-Agent "
        f"built for every request, {fixed_agent:.2f} ms with the functions' clients (`notifications.aws`: fixed "
        f"once per client), {fixed_agent / sdk_agent:.2f} times."
    )
    table = "\n".join(lines)
    print(table)
    print(agent_line)
    if not args.no_report:
        write_section(
            "store_calls",
            "\n".join(
                [
                    "## One DynamoDB call on the local servers",
                    "",
                    f"Command: `python -m bench.store_calls --calls {args.calls}` on {machine()}.",
                    "The same boto3 calls, one at a time, against the moto server and dynalite in the same run",
                    "(docs/local-stack.md says which the stack uses and why). CPU is user + system time of the",
                    "server process, and of the calling process for the client, divided by the calls.",
                    "",
                    table,
                    "",
                    agent_line,
                ]
            ),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
