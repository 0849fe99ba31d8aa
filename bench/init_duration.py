"""Cold start of every packaged function under AWS's Runtime Interface Emulator, layers as built against no .pyc.

    python -m bench.init_duration [--rounds 5]

Each function is packaged as ``sam build`` would (``devstack.runtime``), started in a fresh emulator with
``awslambdaric`` on the runtime's Python and invoked once with its ``events/`` sample against a real broker and
a moto server, with the ``--env-vars`` wiring of ``make run``. The figure is the init phase the emulator logs
(``INIT REPORT(durationMs: ...)``, Lambda's ``Init Duration``): starting the runtime client and importing the
handler module. Two builds alternate round by round: the layers as their Makefiles build them (precompiled,
unchecked-hash .pyc) and the same layers with every .pyc removed (what a read-only /opt without them costs:
every import compiles). The first round of each is a warm-up (file cache) and is not counted. Functions that
run only at deploy time (custom resources) are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from bench.common import kafka_for_bench, machine, write_section
from devstack.runtime.emulator import EmulatedFunction
from devstack.runtime.package import Build, build
from devstack.runtime.samples import sample_events
from devstack.runtime.services import aws_services
from devstack.stack import env_vars

# Goals of the issue that asked for precompiled layers, for the built layers on this machine.
GOALS_MS = {"http": 500, "sender": 600}


def cold_start(built: Build, fid: str, wiring: dict[str, str], sample: Path, precompiled: bool, log: Path) -> float:
    with EmulatedFunction(built, built.function(fid), wiring, log_path=log, precompiled=precompiled) as function:
        invocation = function.invoke(json.loads(sample.read_text()))
    assert invocation.init_duration_ms is not None
    return invocation.init_duration_ms


def goal_for(built: Build, fid: str) -> int | None:
    spec = built.function(fid).spec
    if spec.http_routes:
        return GOALS_MS["http"]
    if "CHANNEL" in spec.environment:
        return GOALS_MS["sender"]
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per build (after one warm-up)")
    args = parser.parse_args(argv)
    built = build()
    functions = {
        fid: sample_events(f.spec)[0]
        for fid, f in built.functions.items()
        if (f.spec.http_routes or f.spec.kafka_triggers) and sample_events(f.spec)
    }
    results: dict[str, dict[bool, list[float]]] = {fid: {True: [], False: []} for fid in functions}
    load_before = "/".join(f"{x:.1f}" for x in os.getloadavg())
    with kafka_for_bench() as bootstrap, aws_services() as services, tempfile.TemporaryDirectory() as logs:
        wiring = env_vars(functions, bootstrap=bootstrap, aws_endpoint=services.aws_endpoint)
        for round_number in range(args.rounds + 1):
            order = list(functions.items())
            shift = round_number % len(order)  # a different neighbour each round: no function always follows another
            for fid, sample in order[shift:] + order[:shift]:
                for precompiled in (True, False) if round_number % 2 else (False, True):
                    log = Path(logs) / f"{fid}-{round_number}-{precompiled}.log"
                    duration = cold_start(built, fid, wiring[fid], sample, precompiled, log)
                    if round_number:
                        results[fid][precompiled].append(duration)
            print(f"round {round_number}/{args.rounds} done", flush=True)

    load_after = "/".join(f"{x:.1f}" for x in os.getloadavg())
    rows = []
    for fid, by_build in results.items():
        built_ms, bare_ms = statistics.median(by_build[True]), statistics.median(by_build[False])
        goal = goal_for(built, fid)
        verdict = "" if goal is None else f"<= {goal} ms: {'met' if built_ms <= goal else 'missed'}"
        rows.append(
            f"| {fid} | {built_ms:.0f} ms (min {min(by_build[True]):.0f}) "
            f"| {bare_ms:.0f} ms (min {min(by_build[False]):.0f}) | {built_ms / bare_ms:.2f} | {verdict} |"
        )
        print(f"{fid:24} built {built_ms:6.0f} ms   without .pyc {bare_ms:6.0f} ms   {verdict}")
    python = built.python
    note = f"\n\n**{python.warning}**" if python.warning else ""
    write_section(
        "init_duration",
        f"""
## Cold start under the Lambda Runtime Interface Emulator

Command: `python -m bench.init_duration --rounds {args.rounds}` on {machine()}.
Functions on Python {python.version} ({"Lambda's runtime version" if python.is_lambda_version else "NOT Lambda's version"}) with `awslambdaric`, packaged as `sam build` would. The figure is
the emulator's `INIT REPORT` (Lambda's `Init Duration`: start of the runtime client and import of the handler)
of a fresh environment invoked with its `events/` sample; median (and minimum) of {args.rounds} cold starts per
build after one warm-up, the two builds alternating and the functions' order rotating round by round. Baseline:
the same layers with every .pyc removed, as both layer builds shipped them before, in the same run. Load
average of the machine (other work included) at the start and the end: {load_before} and {load_after}.{note}

| function | layers as built (precompiled) | layers without .pyc | ratio | goal |
| --- | --- | --- | --- | --- |
{chr(10).join(rows)}

Reading the figures. `/opt` is read-only in Lambda, so without .pyc files every cold start compiles every module
it imports from the layers (Powertools, pydantic, kafka-python, the shared package) and cannot keep the result;
the layer Makefiles now compile them with the runtime's Python (`compileall --invalidation-mode unchecked-hash`:
no stat of the source at import). What remains is the import work itself (Powertools, pydantic and the shared
package for every function; the ingest section's import rows break it down) and the runtime client's start.
The senders load about half as many modules again as the ingest at init (Powertools' batch and idempotency
utilities, boto3 and botocore, jinja2), which the ingest only loads on first use.
""",
    )


if __name__ == "__main__":
    main()
