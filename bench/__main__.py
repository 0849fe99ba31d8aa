"""Run every benchmark: each ``bench/*.py`` module with a ``main()``, in turn, in its own interpreter.

    python -m bench            # all of them (what `make bench` runs)
    python -m bench ingest     # only the named ones

A fresh interpreter per module keeps one benchmark's environment and imports out of the next one's figures.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.common import machine, write_section

HERE = Path(__file__).resolve().parent


def benchmarks() -> list[str]:
    """Names of the modules here that define a top-level ``main`` function."""
    names = []
    for path in sorted(HERE.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        if any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body):
            names.append(path.stem)
    return names


def main(argv: list[str] | None = None) -> int:
    wanted = list(sys.argv[1:] if argv is None else argv)
    available = benchmarks()
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    failed = []
    if not wanted:
        write_section(
            "summary",
            f"Last full run: `make bench` (= `python -m bench`) on {datetime.now(UTC):%Y-%m-%d}, {machine()}.\n"
            "Each section below names its own command, its baseline (measured in the same run, against the same "
            "broker) and the ratio to it. The machine is shared and noisy: compare ratios, not absolute rates.",
            at_top=True,
        )
    for name in wanted or available:
        print(f"== bench.{name}", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=HERE.parent, check=False).returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
