"""Cost per million notifications in AWS at list prices, from the AWS calls and invocations bench.local_stack measured.

    python -m bench.cost [--label after] [--compare before]

Reads ``bench/results/aws_calls_<label>.json`` (written by ``python -m bench.local_stack --calls-label <label>``),
each function's memory and architecture from template.yaml, and the list prices below (us-east-1, each with the
page it comes from), and writes the tables to docs/cost.md between the ``bench:cost`` markers.

What is counted per notification: one HTTP API request; each function's invocations and billed duration (the
measured mean invocation, rounded up to the millisecond, times the template's memory); every DynamoDB request
as write or read request units (an item up to 1 KB: one WRU per write, a batch bills per item, a transaction
twice; reads counted as one RRU, the strongly consistent price, an upper bound); SES and SNS per message; Kafka
and CloudWatch Logs by the bytes. The durations are the local stack's, on a small shared machine, where every
AWS call is a local process: they are an upper bound for the CPU part and a lower bound for the waiting part.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import ROOT, write_section
from devstack.template_config import expanded_template, load_template

RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Price:
    usd: float
    per: str
    source: str


# List prices, US East (N. Virginia), as the pages below state them when this was written; change them here.
PRICES = {
    "http_api": Price(1.00 / 1e6, "request (first 300 million a month)", "https://aws.amazon.com/api-gateway/pricing/"),
    "lambda_request": Price(0.20 / 1e6, "request", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_gb_second_arm64": Price(0.0000133334, "GB-second (Arm)", "https://aws.amazon.com/lambda/pricing/"),
    "lambda_gb_second_x86_64": Price(0.0000166667, "GB-second (x86)", "https://aws.amazon.com/lambda/pricing/"),
    "dynamodb_write": Price(
        0.625 / 1e6, "write request unit (on-demand)", "https://aws.amazon.com/dynamodb/pricing/on-demand/"
    ),
    "dynamodb_read": Price(
        0.125 / 1e6, "read request unit (on-demand)", "https://aws.amazon.com/dynamodb/pricing/on-demand/"
    ),
    "ses_email": Price(0.10 / 1000, "email sent", "https://aws.amazon.com/ses/pricing/"),
    # SMS is priced per message part and destination country (plus carrier fees in some); this is the order of a
    # US message; many countries cost 5 to 15 times as much (see the page's per-country table).
    "sns_sms": Price(
        0.00581, "SMS part to a US number, before carrier fees", "https://aws.amazon.com/sns/sms-pricing/"
    ),
    "msk_serverless_in": Price(0.10, "GB written (MSK Serverless)", "https://aws.amazon.com/msk/pricing/"),
    "msk_serverless_out": Price(0.05, "GB read (MSK Serverless)", "https://aws.amazon.com/msk/pricing/"),
    "msk_serverless_cluster_hour": Price(0.75, "cluster-hour (MSK Serverless)", "https://aws.amazon.com/msk/pricing/"),
    "msk_serverless_partition_hour": Price(
        0.0015, "partition-hour (MSK Serverless)", "https://aws.amazon.com/msk/pricing/"
    ),
    "logs_ingested": Price(
        0.50, "GB ingested (CloudWatch Logs, standard)", "https://aws.amazon.com/cloudwatch/pricing/"
    ),
}
HOURS_PER_MONTH = 730
# Bytes of one record on notifications.requested and on a channel topic (a purchase with its customer: ~1 KB).
RECORD_BYTES = 1024
WRITES = ("PutItem", "UpdateItem", "DeleteItem")
READS = ("GetItem", "Query", "Scan")


def load(label: str) -> dict[str, Any]:
    path = RESULTS / f"aws_calls_{label}.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def architectures() -> dict[str, str]:
    """Function logical id -> its Lambda architecture (the resource's, else Globals', else x86_64)."""
    expanded = expanded_template()
    default = (expanded.get("Globals", {}).get("Function", {}).get("Architectures") or ["x86_64"])[0]
    return {
        fid: (resource.get("Properties", {}).get("Architectures") or [default])[0]
        for fid, resource in expanded.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }


def function_costs(data: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """Per function: dollars per notification by line item."""
    template = load_template()
    arches = architectures()
    n = max(1, data["accepted"])
    rows: list[tuple[str, dict[str, float]]] = []
    for function, total in sorted(data["functions"].items()):
        spec = template.function(function)
        arch = arches.get(function, "x86_64")
        invocations = total["invocations"] / n
        if not invocations and not total["aws_calls"]:
            continue
        billed_ms = math.ceil(1000 * total["invocation_seconds"] / max(1, total["invocations"]))
        gb_seconds = invocations * billed_ms / 1000 * spec.memory_mb / 1024
        calls = {kind: count / n for kind, count in total["aws_calls"].items()}
        wru = rru = 0.0
        for kind, per in calls.items():
            service, _, operation = kind.partition(".")
            if service != "dynamodb":
                continue
            if operation in WRITES:
                wru += per
            elif operation in READS:
                rru += per
            elif operation == "BatchWriteItem.items":
                wru += per
            elif operation == "TransactWriteItems.items":
                wru += 2 * per
            elif operation == "BatchGetItem.items":
                rru += per
            elif operation == "TransactGetItems.items":
                rru += 2 * per
        costs = {
            "Lambda requests": invocations * PRICES["lambda_request"].usd,
            "Lambda duration": gb_seconds * PRICES[f"lambda_gb_second_{arch}"].usd,
            "DynamoDB writes": wru * PRICES["dynamodb_write"].usd,
            "DynamoDB reads": rru * PRICES["dynamodb_read"].usd,
            "SES": calls.get("sesv2.SendEmail", 0.0) * PRICES["ses_email"].usd,
            "SNS SMS": calls.get("sns.Publish", 0.0) * PRICES["sns_sms"].usd,
        }
        rows.append((function, costs))
    return rows


def shared_costs(data: dict[str, Any]) -> dict[str, float]:
    """Dollars per notification that belong to no function: the HTTP API, Kafka bytes, logs."""
    channels = len(data["channels"])
    written = (1 + channels) * RECORD_BYTES / 1e9  # requested + one record per channel
    read = written  # each record is read once by its consumer group
    costs = {
        "API Gateway HTTP API": PRICES["http_api"].usd,
        "MSK Serverless data": written * PRICES["msk_serverless_in"].usd + read * PRICES["msk_serverless_out"].usd,
    }
    if "log_bytes" in data:  # measured since the log bytes were counted
        costs["CloudWatch Logs"] = data["log_bytes"] / max(1, data["accepted"]) / 1e9 * PRICES["logs_ingested"].usd
    return costs


def money(usd_per_notification: float) -> str:
    return f"${usd_per_notification * 1e6:,.2f}"


def tables(data: dict[str, Any]) -> tuple[str, float, float]:
    """The per-million table, and the totals without and with the SMS provider."""
    rows = function_costs(data)
    shared = shared_costs(data)
    lines = ["| part | line item | per million notifications |", "| --- | --- | --- |"]
    total = 0.0
    sms = 0.0
    for function, costs in rows:
        for item, usd in costs.items():
            if usd:
                lines.append(f"| {function} | {item} | {money(usd)} |")
                total += usd
                if item == "SNS SMS":
                    sms += usd
    for item, usd in shared.items():
        lines.append(f"| shared | {item} | {money(usd)} |")
        total += usd
    lines.append(f"| **all** | without SMS | **{money(total - sms)}** |")
    lines.append(f"| **all** | with SMS to US numbers | **{money(total)}** |")
    return "\n".join(lines), total - sms, total


def per_channel(data: dict[str, Any]) -> str:
    """What one more channel on a notification adds, by channel, and what every notification pays once."""
    rows = dict(function_costs(data))
    shared = shared_costs(data)
    senders = {f: c for f, c in rows.items() if "Sender" in f}
    once = sum(sum(c.values()) for f, c in rows.items() if f not in senders) + sum(
        v for k, v in shared.items() if k != "MSK Serverless data"
    )
    kafka_per_channel = shared["MSK Serverless data"] / (1 + len(data["channels"]))
    lines = ["| part | per million notifications |", "| --- | --- |", f"| once per notification | {money(once)} |"]
    for function, costs in sorted(senders.items()):
        lines.append(
            f"| + {function.removesuffix('SenderFunction').lower()} | {money(sum(costs.values()) + kafka_per_channel)} |"
        )
    return "\n".join(lines)


def line_items(data: dict[str, Any]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for _, costs in function_costs(data):
        for item, usd in costs.items():
            totals[item] = totals.get(item, 0.0) + usd
    for item, usd in shared_costs(data).items():
        totals[item] = totals.get(item, 0.0) + usd
    return totals


def comparison(old: dict[str, Any], new: dict[str, Any], old_label: str, new_label: str) -> str:
    before, after = line_items(old), line_items(new)
    lines = [f"| line item | {old_label} | {new_label} |", "| --- | --- | --- |"]
    for item in dict.fromkeys([*before, *after]):
        was = money(before[item]) if item in before else "not measured"
        lines.append(f"| {item} | {was} | {money(after.get(item, 0.0))} |")
    return "\n".join(lines)


def fixed_monthly() -> str:
    partitions = 3 * 6 + 1  # requested + 5 channel topics of 3 partitions, DLQ of 1 (devstack.topics)
    cluster = PRICES["msk_serverless_cluster_hour"].usd * HOURS_PER_MONTH
    part = PRICES["msk_serverless_partition_hour"].usd * HOURS_PER_MONTH * partitions
    return (
        f"MSK Serverless also bills ${cluster:,.0f} a month for the cluster and ${part:,.0f} for {partitions} "
        f"partitions, whatever the traffic: ${(cluster + part) / 10:,.2f} per million notifications at 10 million "
        f"a month, ${(cluster + part):,.2f} at one million."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="after", help="the run: bench/results/aws_calls_<label>.json")
    parser.add_argument("--compare", default=None, help="another run to compare with (e.g. before)")
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    data = load(args.label)
    table, _, _ = tables(data)
    body = [
        f"## Cost per million notifications ({args.label})",
        "",
        f"From `{data['command']}` at commit {data.get('commit', 'unknown')} ({data['accepted']} notifications on "
        f"{', '.join(data['channels'])}); computed by `python -m bench.cost --label {args.label}`.",
        "",
        table,
        "",
        fixed_monthly(),
        "",
        "What each channel adds (its sender's invocations, store calls and provider, and its Kafka record):",
        "",
        per_channel(data),
    ]
    if args.compare:
        other = load(args.compare)
        body += [
            "",
            f"Compared with `{args.compare}` (commit {other.get('commit', 'unknown')}), by line item, per million:",
            "",
            comparison(other, data, args.compare, args.label),
        ]
    text = "\n".join(body)
    print(text)
    if not args.no_report:
        write_section(f"cost_{args.label}", text, report=ROOT / "docs" / "cost.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
