"""A private Docker engine for ``sam local invoke``: Debian's ``dockerd``, its images cached under ``.cache/docker``.

SAM CLI runs each function in a container of Lambda's base image (``public.ecr.aws/lambda/python:3.13-<arch>``,
which :mod:`devstack.lambda_image` builds locally when no registry is reachable). This engine is the project's
own: its own socket, state and bridge, so it neither needs nor touches a Docker the machine may run already.

- Storage: overlay2 where the kernel and file system allow it, else vfs (which copies the whole image for every
  container: ~15 s per ``sam local invoke`` instead of ~1 s).
- Networking: its default bridge is an interface of its own (``devstack-dock0``, made with ``ip link``), and it
  writes no iptables rules (``--iptables=false``): containers reach the host's addresses on their bridges, and SAM
  reaches a container through the port Docker publishes on 127.0.0.1; nothing is routed beyond the machine.
  ``network()`` adds a user-defined bridge (``docker network create``); its gateway is the host's address on it.
- Needs root (dockerd does) and Debian's ``docker.io`` (``make test`` installs it with the other test tools).
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / ".cache" / "docker"
BRIDGE = "devstack-dock0"  # at most 15 characters (IFNAMSIZ)
BRIDGE_ADDRESS = "172.28.240.1/24"  # the default bridge's gateway (containers on it are not reached by the stack)
STORAGE_DRIVERS = ("overlay2", "vfs")


class EngineError(RuntimeError):
    """The private Docker engine could not start or do what was asked."""


def _run(args: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload, no-any-return]


@dataclass
class Engine:
    """``Engine().start()`` runs (or finds running) the engine of ``data_dir``; ``stop()`` ends it if it started it."""

    data_dir: Path = DATA_DIR

    def __post_init__(self) -> None:
        # A unix socket path is limited to 108 bytes: the runtime state lives under /run, named after the data dir.
        tag = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:10]
        self.run_dir = Path("/run") / f"devstack-docker-{tag}"
        self.socket = self.run_dir / "docker.sock"
        self.host = f"unix://{self.socket}"  # DOCKER_HOST for clients of this engine (SAM CLI, the docker CLI)
        self.pidfile = self.run_dir / "docker.pid"
        self.log_file = self.data_dir / "dockerd.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}

    def docker(self, *args: str, check: bool = True, input: str | None = None) -> str:
        """Run the docker CLI against this engine; its stdout."""
        client = shutil.which("docker")
        if client is None:
            raise EngineError("the docker CLI is missing: install Debian's docker.io (make test does)")
        done = _run([client, *args], env=self.env(), input=input)
        if check and done.returncode != 0:
            raise EngineError(f"docker {' '.join(args[:3])} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def running(self) -> bool:
        return self.socket.exists() and _run(["docker", "version"], env=self.env()).returncode == 0

    def start(self, timeout: float = 60.0) -> Engine:
        if self.running():
            return self
        dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None)
        if dockerd is None:
            raise EngineError("dockerd is missing: install Debian's docker.io (`make test` installs it when missing)")
        if os.geteuid() != 0:
            raise EngineError("dockerd needs root: run the sam local suite as root (or with sudo)")
        self._bridge()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        errors = []
        for driver in STORAGE_DRIVERS:
            if self._start_dockerd(dockerd, driver, timeout):
                return self
            errors.append(f"{driver}: {self._log_tail()}")
        raise EngineError("dockerd did not start:\n" + "\n".join(errors))

    def _start_dockerd(self, dockerd: str, driver: str, timeout: float) -> bool:
        args = [
            dockerd,
            f"--host={self.host}",
            f"--data-root={self.data_dir / driver}",
            f"--exec-root={self.run_dir / 'exec'}",
            f"--pidfile={self.pidfile}",
            f"--storage-driver={driver}",
            f"--bridge={BRIDGE}",
            "--iptables=false",
            "--ip-masq=false",
        ]
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            if self.running():
                return True
            time.sleep(0.3)
        self.stop()
        return False

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return "(no log)"

    @staticmethod
    def _bridge() -> None:
        """The default bridge, an interface of this engine's own (dockerd's ``--bridge`` wants it to exist)."""
        if _run(["ip", "link", "show", BRIDGE]).returncode == 0:
            return
        for args in (
            ["ip", "link", "add", BRIDGE, "type", "bridge"],
            ["ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE],
            ["ip", "link", "set", BRIDGE, "up"],
        ):
            done = _run(args)
            if done.returncode != 0:
                raise EngineError(f"{' '.join(args)}: {done.stderr.strip()}")

    def stop(self) -> None:
        """Stop the engine this object started (an engine found running is left alone). Its user-defined bridges
        go first: dockerd leaves their interfaces (and the gateway addresses on them) behind when it stops."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        self.docker("network", "prune", "--force", check=False)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def network(self, name: str, subnet: str) -> str:
        """A user-defined bridge ``name`` with ``subnet`` (made if missing); the host's address on it (its gateway)."""
        gateway = str(next(ipaddress.ip_network(subnet).hosts()))
        found = self.docker("network", "ls", "--filter", f"name=^{name}$", "--format", "{{.Name}}").split()
        if name in found:
            config = json.loads(self.docker("network", "inspect", name))[0]["IPAM"]["Config"]
            if not any(c.get("Subnet") == subnet for c in config):
                raise EngineError(f"network {name} exists with {config}, not subnet {subnet}: remove it")
            return gateway
        held = _run(["ip", "-o", "addr", "show", "to", gateway]).stdout.split()
        if held:  # another engine's bridge (or anything else) has the address: the containers' traffic would split
            raise EngineError(f"{gateway} is already an address of interface {held[1]}: remove it or choose a subnet")
        self.docker("network", "create", "--driver", "bridge", "--subnet", subnet, "--gateway", gateway, name)
        return gateway


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.docker_engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop"])
    args = parser.parse_args(argv)
    engine = Engine()
    if args.command == "start":
        engine.start()
        print(f"export DOCKER_HOST={engine.host}")
        return 0
    pid = engine.pidfile.read_text().strip() if engine.pidfile.exists() else ""
    if pid:
        os.kill(int(pid), signal.SIGTERM)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
