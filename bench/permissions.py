"""What enforcing the template's permissions costs the local stack: CPU per notification with and without it.

    python -m bench.permissions [--count 1000] [--rounds 2]

Writes the table to docs/performance.md between the ``bench:permissions`` markers.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.common import machine, write_section
from bench.local_stack import BENCHMARK, CHANNELS, drive, warm_up
from devstack.stack import LocalStack, free_ports_config

BROKER = "Kafka broker"
WHAT = (
    "Runs `bench.local_stack`'s workload (email + SMS + Slack, 8 clients) on a fresh stack without enforcement (every "
    "function may do anything, on the broker's plaintext listener) and on one with it (Kafka ACLs over SASL/SCRAM, "
    "every AWS call authorized against the role, the custom resources created by the topics function), alternating "
    "in one process, so both see the same machine. CPU per notification counts every process of the stack but the "
    "broker (as `bench.local_stack` does), and separately the broker's, whose authorizer checks and logs each request."
)


def one_run(enforce: bool, count: int) -> tuple[float, float, int]:
    """(stack CPU ms per notification without the broker, the broker's, notifications delivered on every channel)."""
    with tempfile.TemporaryDirectory(prefix="bench-permissions-") as data:
        config = free_ports_config(
            Path(data),
            call_counts_dir=Path(data) / "calls",
            enforce_permissions=enforce,
        )
        with LocalStack(config, progress=lambda line: None) as stack:
            warm_up(stack)
            run = drive(stack, count, 8, 0.0, 600.0)
    accepted = max(1, len(run.accepted))
    stack_cpu = sum(s for group, s in run.cpu.items() if group not in (BENCHMARK, BROKER))
    complete = len(run.delivered) == len(run.accepted) * len(CHANNELS) and not run.duplicates
    return (
        stack_cpu * 1000 / accepted,
        run.cpu.get(BROKER, 0.0) * 1000 / accepted,
        len(run.accepted) if complete else -1,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.permissions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-report", action="store_true", help="do not write docs/performance.md")
    args = parser.parse_args(argv)
    rows: list[tuple[str, float, float, int]] = []
    for round_ in range(1, args.rounds + 1):
        for enforce in (False, True):
            print(f"round {round_}: {'with' if enforce else 'without'} enforcement ...", flush=True)
            stack_ms, broker_ms, delivered = one_run(enforce, args.count)
            rows.append(("with" if enforce else "without", stack_ms, broker_ms, delivered))

    def mean(label: str, column: int) -> float:
        values = [float(r[column]) for r in rows if r[0] == label]
        return sum(values) / len(values)

    ratio = mean("with", 1) / mean("without", 1)
    lines = [
        "| round | enforcement | CPU per notification, stack without broker | broker | delivered |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {i // 2 + 1} | {label} | {stack:.1f} ms | {broker:.1f} ms | {delivered if delivered >= 0 else 'INCOMPLETE'} |"
            for i, (label, stack, broker, delivered) in enumerate(rows)
        ),
        "",
        f"Mean with / without, stack without broker: **{ratio:.2f}x**; broker: "
        f"{mean('with', 2) / max(mean('without', 2), 1e-9):.2f}x.",
    ]
    table = "\n".join(lines)
    print(table)
    if not args.no_report:
        command = f"python -m bench.permissions --count {args.count} --rounds {args.rounds}"
        write_section(
            "permissions",
            "\n".join(
                [
                    "## Enforcing the template's permissions",
                    "",
                    f"Command: `{command}` on {machine()}. {WHAT}",
                    "",
                    table,
                ]
            ),
        )
    return 0 if all(r[3] >= 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
