"""``sam local invoke`` without Docker: a packaged function in AWS's Runtime Interface Emulator.

    python -m devstack.runtime build
    python -m devstack.runtime invoke IngestFunction -e events/ingest_post_valid.json \
        --env-vars .devstack/env-vars.json

``invoke`` packages the template's functions (cached), starts the function in the emulator with ``awslambdaric``
on the runtime's Python, with the template's environment plus the function's entry of the ``--env-vars`` file
(``make run`` writes ``.devstack/env-vars.json`` for the running stack), sends the event and prints the answer;
the init duration and the emulator's log go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from devstack.runtime.emulator import EmulatedFunction, EmulatorError, FunctionError
from devstack.runtime.package import build
from devstack.runtime.toolchain import ToolchainError
from devstack.template_config import DEFAULT_TEMPLATE, TemplateError


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.runtime", description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="package every function, build the emulator and the runtime")
    invoke = commands.add_parser("invoke", help="invoke one function with an event")
    invoke.add_argument("function", help="logical id in template.yaml, e.g. IngestFunction")
    invoke.add_argument("-e", "--event", type=Path, required=True, help="event JSON file, e.g. events/fanout_msk.json")
    invoke.add_argument("--env-vars", type=Path, help='SAM format: {"FunctionLogicalId": {"VAR": "value"}}')
    invoke.add_argument("--no-pyc", action="store_true", help="layers without .pyc files (to compare cold starts)")
    args = parser.parse_args(argv)
    try:
        built = build(args.template, progress=_say)
        if args.command == "build":
            for fid, function in built.functions.items():
                _say(f"{fid}: task root {function.task_root}, /opt {function.opt}")
            _say(f"emulator {built.rie}; runtime {built.venv}")
            return 0
        overrides = json.loads(args.env_vars.read_text()) if args.env_vars else {}
        log = Path(tempfile.mkdtemp(prefix="devstack-runtime-")) / f"{args.function}.log"
        function = built.function(args.function)
        with EmulatedFunction(
            built, function, overrides.get(args.function, {}), log_path=log, precompiled=not args.no_pyc
        ) as emulated:
            invocation = emulated.invoke(json.loads(args.event.read_text()))
    except KeyError:
        _say(f"no function {args.function!r} in {args.template} (functions: {', '.join(built.functions)})")
        return 2
    except (ToolchainError, TemplateError, EmulatorError, FunctionError, OSError, ValueError) as exc:
        _say(f"error: {exc}")
        return 1
    print(json.dumps(invocation.payload, indent=2))
    _say(f"init {invocation.init_duration_ms} ms, invocation {invocation.duration_ms} ms; emulator log {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
