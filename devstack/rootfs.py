"""A fresh Debian root file system as a tarball: the machine the README's commands are tested on.

    python -m devstack.rootfs        # builds it once (about 1.5 min, 220 MB), prints the tarball's path

``debootstrap --variant=minbase --include=python3,make trixie``: what a new Debian machine has before anyone
installed anything by hand; trixie's ``python3`` is 3.13, Lambda's runtime version, so the root also serves as the
base of a python3.13 image. The host's extra CA certificates (``/usr/local/share/ca-certificates/*.crt``) are
copied in, so that behind a TLS-inspecting proxy the JRE's ``ca-certificates`` (``make tools``) adds them to the
store pip, npm and Java read. The tarball's name in ``.cache/rootfs/`` carries the hash of the recipe and of the
certificates; it is built beside it and renamed into place, so an interrupted build leaves nothing finished-looking.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from devstack.broker_fetch import REPO_ROOT, file_lock

SUITE = "trixie"
MIRROR = "http://deb.debian.org/debian"
VARIANT = "minbase"
INCLUDE = ("python3", "make")
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
CACHE_DIR = REPO_ROOT / ".cache" / "rootfs"


class RootfsError(RuntimeError):
    """The root file system could not be built (a tool is missing, debootstrap failed)."""


def debootstrap_command(target: Path) -> list[str]:
    return ["debootstrap", f"--variant={VARIANT}", f"--include={','.join(INCLUDE)}", SUITE, str(target), MIRROR]


def _host_certificates() -> list[Path]:
    return sorted(HOST_CA_DIR.glob("*.crt"))


def recipe_hash() -> str:
    """Hash of everything the tarball is made of: the debootstrap command and the certificates copied in."""
    digest = hashlib.sha256(json.dumps(debootstrap_command(Path("ROOT"))).encode())
    for cert in _host_certificates():
        digest.update(cert.name.encode() + b"\0" + cert.read_bytes())
    return digest.hexdigest()[:12]


def tarball(cache_dir: Path = CACHE_DIR) -> Path:
    """The cached tar of the root, built first if this recipe has none yet."""
    target = cache_dir / f"debian-{SUITE}-{VARIANT}-{recipe_hash()}.tar"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(cache_dir / ".lock"):  # a concurrent build of the same recipe waits, then takes its result
        if not target.is_file():
            _build(target)
    return target


def _build(target: Path) -> None:
    if os.geteuid() != 0:
        raise RootfsError("building the root file system needs root (debootstrap creates device nodes, owners)")
    if shutil.which("debootstrap") is None:
        raise RootfsError("debootstrap is not installed: `apt-get install debootstrap` (or `make test-tools`)")
    with tempfile.TemporaryDirectory(prefix="build-", dir=target.parent) as work:
        root = Path(work) / "root"
        run = subprocess.run(debootstrap_command(root), capture_output=True, text=True, check=False)
        if run.returncode != 0:
            log = root / "debootstrap" / "debootstrap.log"
            detail = log.read_text(errors="replace")[-3000:] if log.is_file() else run.stderr[-3000:]
            raise RootfsError(f"debootstrap failed ({run.returncode}):\n{run.stdout[-2000:]}\n{detail}")
        certs = root / HOST_CA_DIR.relative_to("/")
        certs.mkdir(parents=True, exist_ok=True)
        for cert in _host_certificates():
            shutil.copy2(cert, certs / cert.name)
        partial = Path(work) / target.name
        subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], check=True)
        partial.replace(target)


def extract_command(tar: Path, dest: Path) -> list[str]:
    """The command that unpacks a root made by :func:`tarball` into ``dest``, with numeric owners and permissions."""
    return ["tar", "--numeric-owner", "--same-permissions", "--same-owner", "-C", str(dest), "-xf", str(tar)]


def extract(tar: Path, dest: Path) -> None:
    """Unpacks a root made by :func:`tarball` into ``dest`` (as root: owners and device nodes)."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(extract_command(tar, dest), check=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.rootfs", description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    try:
        print(tarball())
    except RootfsError as exc:
        print(f"rootfs: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
