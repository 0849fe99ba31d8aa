"""Install requirements at exactly the versions and hashes of the project's lock file (stdlib only).

    python install_locked.py --lock requirements.lock [--exclude NAME ...] [--pip CMD] -r requirements.txt \
        [NAME ...] -- [pip install options: --target, --platform, --python-version, ...]

Two pip runs: the first resolves the requirements for the target (the pip options) with the lock's pins as
constraints and reports what it would install (``--dry-run --report``); the second installs exactly those pins,
copied from the lock with their hashes, with ``--require-hashes --no-deps``. Two runs because pip refuses
unpinned requirements in hash-checking mode (and a constraints file with hashes turns that mode on). A resolved
package missing from the lock is an error: the lock is the only source of versions.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path


def canonical(name: str) -> str:
    """PEP 503 normalized name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_entries(text: str) -> dict[tuple[str, str], str]:
    """``(name, version) -> the entry's lines`` (pin, marker and hashes; ``# via`` comments left out)."""
    entries: dict[tuple[str, str], str] = {}
    key: tuple[str, str] | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
            if match is None:
                raise SystemExit(f"lock: cannot read {line!r}")
            key = (canonical(match.group(1)), match.group(2))
            entries[key] = line
        elif key is not None:
            entries[key] += "\n" + line
    return entries


def resolve(
    pip: list[str], entries: dict[tuple[str, str], str], requirements: list[str], pip_options: list[str]
) -> list[tuple[str, str]]:
    """``(name, version)`` of every package pip would install for these requirements under the lock's pins."""
    # name==version ; marker, without extras (pip refuses extras in constraints)
    pins = [re.sub(r"\[[^\]]*\]", "", entry.split("\n", 1)[0], count=1).rstrip(" \\") for entry in entries.values()]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as constraints:
        constraints.write("\n".join(pins) + "\n")
        constraints.flush()
        command = [*pip, "install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-"]
        command += ["--disable-pip-version-check", *pip_options, *requirements, "-c", constraints.name]
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)  # noqa: S603 - pip, our arguments
        report = json.loads(done.stdout)
    return [(canonical(item["metadata"]["name"]), item["metadata"]["version"]) for item in report["install"]]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    pip_options = args[args.index("--") + 1 :] if "--" in args else []
    args = args[: args.index("--")] if "--" in args else args
    parser = argparse.ArgumentParser(prog="install_locked.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, required=True)
    parser.add_argument("--pip", default=f"{sys.executable} -m pip", help="pip command (default: this Python's)")
    parser.add_argument("-r", "--requirement", action="append", default=[], help="a requirements file")
    parser.add_argument("--exclude", nargs="*", default=[], help="packages not to install (provided elsewhere)")
    parser.add_argument("names", nargs="*", help="requirements given by name")
    options = parser.parse_args(args)
    pip = shlex.split(options.pip)
    requirements = [*options.names]
    for path in options.requirement:
        requirements += ["-r", path]
    entries = lock_entries(options.lock.read_text(encoding="utf-8"))
    excluded = {canonical(name) for name in options.exclude}
    pins = []
    for name, version in resolve(pip, entries, requirements, pip_options):
        if name in excluded:
            continue
        if (name, version) not in entries:
            raise SystemExit(f"{name}=={version} is not in {options.lock}: regenerate it (make lock)")
        pins.append(entries[(name, version)])
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as pinned:
        pinned.write("\n".join(sorted(pins)) + "\n")
        pinned.flush()
        command = [*pip, "install", "--require-hashes", "--no-deps", "--disable-pip-version-check", *pip_options]
        subprocess.run([*command, "-r", pinned.name], check=True)  # noqa: S603 - pip, our arguments
    return 0


if __name__ == "__main__":
    sys.exit(main())
