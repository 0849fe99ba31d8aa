"""The local stack's DynamoDB: dynalite, an open-source (Apache-2.0) DynamoDB API server on LevelDB, on disk.

    python -m devstack.dynamodb_local install        # npm ci of devstack/dynalite into .cache/dynalite

Why not moto for DynamoDB: the moto server keeps its state in memory (a restart of the stack forgot every status
and idempotency record) and spends more CPU per call; dynalite keeps tables in LevelDB files and answers a call
for less (docs/local-stack.md, "The local DynamoDB", has the measurement). The
functions reach it through their ordinary boto3 clients: ``AWS_ENDPOINT_URL_DYNAMODB`` overrides the
endpoint of DynamoDB only, the other services stay on moto (AWS SDKs and Tools Reference Guide,
"Service-specific endpoints":
https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html).

The npm package and its dependencies are pinned with integrity hashes in ``devstack/dynalite/package-lock.json``;
LevelDB's native module ships prebuilt in the npm tarball of ``classic-level`` (Linux, macOS, Windows), so no
compiler is needed. Needs Node.js >= 20 (``make tools`` installs it from Debian when missing).

dynalite has no transactions: ``devstack/dynalite/serve.js`` adds ``TransactWriteItems`` and ``TransactGetItems``
on top of its single-item operations (all or nothing, ``TransactionCanceledException`` with a reason per item; see
the script for what differs from AWS). dynalite ignores ``ReturnValuesOnConditionCheckFailure``; ``serve.js`` adds
it: with ``ALL_OLD`` a failed conditional PutItem, UpdateItem or DeleteItem (or a transaction's item) answers with
the item as it was, as AWS does. It has no ``UpdateTimeToLive`` (expired items stay, as with moto).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = Path(__file__).resolve().parent / "dynalite"
INSTALL_DIR = REPO_ROOT / ".cache" / "dynalite"
CLI = INSTALL_DIR / "node_modules" / "dynalite" / "cli.js"
HOST = "127.0.0.1"


class DynaliteError(RuntimeError):
    """dynalite could not be installed or started."""


def _lock_digest() -> str:
    return hashlib.sha256((PACKAGE_DIR / "package-lock.json").read_bytes()).hexdigest()


def is_installed() -> bool:
    stamp = INSTALL_DIR / ".installed"
    return CLI.exists() and stamp.exists() and stamp.read_text().strip() == _lock_digest()


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise DynaliteError("Node.js is required for the local DynamoDB (make tools installs it)")
    return found


def install(progress: object = None) -> Path:
    """``npm ci`` of the pinned dynalite into ``.cache/dynalite`` (once per lock file)."""
    if is_installed():
        return CLI
    npm = shutil.which("npm")
    if npm is None:
        raise DynaliteError("npm is required to install the local DynamoDB (make tools installs it)")
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(PACKAGE_DIR / name, INSTALL_DIR / name)
    # --ignore-scripts: the only install script (classic-level's node-gyp-build) would pick the shipped prebuilt
    # binary, which node-gyp-build also does when the module is loaded.
    result = subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=INSTALL_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not CLI.exists():
        raise DynaliteError(f"npm ci of dynalite failed: {result.stderr.strip()[-2000:]}")
    (INSTALL_DIR / ".installed").write_text(_lock_digest() + "\n")
    return CLI


def command(port: int, path: Path, host: str = HOST) -> list[str]:
    """dynalite on ``host``:``port`` (0: any free port), its tables in LevelDB under ``path``; it writes one JSON
    line ``{"port": N}`` on stdout once it listens (``devstack/dynalite/serve.js``)."""
    return [node(), str(PACKAGE_DIR / "serve.js"), str(INSTALL_DIR), str(port), str(path), host]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.dynamodb_local", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="install the pinned dynalite into .cache/dynalite")
    parser.parse_args(argv)
    try:
        print(f"dynalite: {install()}")
        return 0
    except DynaliteError as exc:
        print(f"dynalite: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
