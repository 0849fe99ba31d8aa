"""The README's run command on a fresh Debian machine, from its root file system up.

    python -m devstack.fresh_machine [--log PATH] [--timeout SECONDS]   # needs root, util-linux, debootstrap

1. The command runs in its own mount and PID namespaces (``unshare``): every process it starts and every mount it
   makes ends with it. It shares the host's network: downloads go where the host's go, and the stack binds
   127.0.0.1 (the HTTP API's port exactly, so it must be free here; the others move to free ports when taken).
2. In there a tmpfs receives the root of :mod:`devstack.rootfs` (Debian minbase with ``python3`` and ``make``,
   nothing else) and the working tree in ``/root/notifications`` as it is now: tracked files with their
   uncommitted edits, and untracked files git does not ignore (a new module not yet added counts too); never
   ``.venv``, ``.cache`` or ``.devstack``, which git ignores. The tmpfs (about 1.9 GB after a run) holds
   everything the run installs and vanishes with the namespace: nothing to delete afterwards (deleting the same
   root from disk took 20 to 60 s here), nothing left behind by a killed run.
3. The README's run command (the first ``sh`` block after "## Two commands", so the two cannot drift) runs as root
   in a chroot there, with only ``HOME``, ``PATH`` and ``LANG`` set.
4. Its output goes to a log, each line with the seconds since the start. Once the demo has reported and the stack
   says it keeps running, SIGINT goes to the run's process group, as Ctrl-C in a terminal would; it must stop by
   itself within a grace period, else the namespaces are killed.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from devstack import rootfs
from devstack.broker_fetch import REPO_ROOT
from devstack.ports import port_free

README = REPO_ROOT / "README.md"
PROJECT_DIR = "/root/notifications"
DEFAULT_LOG = REPO_ROOT / ".devstack" / "fresh-machine.log"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# What `python -m devstack up --demo` prints (devstack/__main__.py, devstack/demo.py).
_DEMO = re.compile(r"^demo: (\d+)/(\d+) delivered")
_RUNNING = "up: running"
_STOPPED = "up: stopped"


class FreshMachineError(RuntimeError):
    """The run could not be made: a prerequisite is missing or the machine is not in a state to run it."""


@dataclass(frozen=True)
class FreshRun:
    """What happened to one run of the README's command."""

    command: str
    log: Path
    wall_seconds: float  # unpacking the root, the command and its stop
    cpu_seconds: float  # user + system of every process in the namespaces
    returncode: int | None  # of the namespaces (130: make died of the SIGINT, as after Ctrl-C)
    delivered: tuple[int, int] | None  # the demo's "N/M delivered"
    stopped: bool  # printed "up: stopped" and exited by itself after SIGINT
    cut_short: bool  # the stack was not running yet when stopped (time limit, or cancelled)

    @property
    def passed(self) -> bool:
        return self.delivered is not None and 0 < self.delivered[0] == self.delivered[1] and self.stopped

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def missing_prerequisites() -> list[str]:
    """What this machine lacks to make a run, each with what to install (empty when nothing)."""
    missing = [] if os.geteuid() == 0 else ["root (chroot, namespaces, mounts and debootstrap need it)"]
    tools = (("unshare", "util-linux"), ("setpriv", "util-linux"), ("chroot", "coreutils"), ("git", "git"))
    missing += [f"{tool} (`apt-get install {package}`)" for tool, package in tools if shutil.which(tool) is None]
    if shutil.which("debootstrap") is None:
        missing.append("debootstrap (`apt-get install debootstrap`, or `make test-tools`)")
    return missing


def readme_run_command(readme: Path = README) -> str:
    """The command in the README's first ``sh`` block after "## Two commands"."""
    _, heading, section = readme.read_text().partition("\n## Two commands\n")
    block = re.search(r"^```sh\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    if not heading or block is None:
        raise FreshMachineError(f"{readme} has no ```sh block after '## Two commands'")
    return block.group(1).strip()


def _api_port() -> int:
    from devstack.__main__ import build_parser  # noqa: PLC0415 - the stack's modules only when a run is made

    port: int = build_parser().parse_args(["up"]).port
    return port


def working_tree_tar(tar: Path, repo: Path = REPO_ROOT) -> int:
    """Writes what ``git ls-files`` names (tracked, and untracked but not ignored) as the working tree has it,
    owned by root; answers the number of files."""
    listing = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    names = sorted({os.fsdecode(n) for n in listing.split(b"\0") if n})
    present = [n for n in names if (repo / n).is_symlink() or (repo / n).is_file()]  # not deleted since

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid, info.uname, info.gname = 0, 0, "root", "root"
        return info

    with tarfile.open(tar, "w") as archive:
        for name in present:
            archive.add(repo / name, arcname=name, recursive=False, filter=as_root)
    return len(present)


def _init_script(root: Path, tarball: Path, tree: Path, command: str) -> str:
    """PID 1 of the namespaces: builds the root on a tmpfs, mounts what a booted machine has, then runs the command
    in the chroot as its child, not exec'd (PID 1 gets no signal it has no handler for, so make there would not
    stop on Ctrl-C). Mounts are private to the namespaces (unshare's default propagation) and vanish with them."""
    project = f"{root}{PROJECT_DIR}"
    environment = ["/usr/bin/env", "-i", "HOME=/root", f"PATH={PATH}", "LANG=C.UTF-8"]
    lines = [
        ["mount", "-t", "tmpfs", "-o", "mode=755", "fresh-root", str(root)],
        rootfs.extract_command(tarball, root),
        ["mkdir", "-p", project],
        ["tar", "--same-owner", "-C", project, "-xf", str(tree)],
        ["cp", "/etc/resolv.conf", f"{root}/etc/resolv.conf"],
        ["echo", f"fresh-machine: root unpacked on a tmpfs; {command} in {PROJECT_DIR}"],
        ["mount", "--rbind", "/dev", f"{root}/dev"],
        ["mount", "-t", "tmpfs", "-o", "nosuid,nodev,mode=1777", "shm", str(root / "dev" / "shm")],
        ["mount", "-t", "proc", "proc", f"{root}/proc"],  # this PID namespace's processes
        ["mount", "--rbind", "/sys", f"{root}/sys"],
        ["chroot", str(root), *environment, "/bin/sh", "-c", f"cd {PROJECT_DIR} && {command}"],
    ]
    return "\n".join(shlex.join(line) for line in lines)


def _note(log: IO[str], started: float, line: str) -> None:
    log.write(f"{time.monotonic() - started:8.1f} {line}\n")
    log.flush()


class _Output:
    """Reads the run's output into the log (seconds since the start before each line) and notes the milestones."""

    def __init__(self, stream: IO[bytes], log: IO[str], started: float) -> None:
        self.delivered: tuple[int, int] | None = None
        self.running = threading.Event()
        self.stopped = False
        self._stream, self._log, self._started = stream, log, started
        self.thread = threading.Thread(target=self._read, name="fresh-machine-output", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for raw in self._stream:
            line = raw.decode(errors="replace").rstrip("\r\n")
            _note(self._log, self._started, line)
            if match := _DEMO.match(line):
                self.delivered = (int(match[1]), int(match[2]))
            elif line.startswith(_RUNNING):
                self.running.set()
            elif line.startswith(_STOPPED):
                self.stopped = True


def _wait(pid: int, until: float) -> tuple[int, float] | None:
    """Exit code and CPU seconds of ``pid`` and everything it reaped, once it ends before ``until``."""
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime
        if time.monotonic() >= until:
            return None
        time.sleep(0.2)


def run(
    log_path: Path = DEFAULT_LOG,
    *,
    timeout: float = 20 * 60,
    grace: float = 120,
    cancel: threading.Event | None = None,
) -> FreshRun:
    """Runs the README's command on a fresh root.

    ``timeout`` bounds the run up to the demo, ``grace`` the stop after SIGINT; ``cancel`` cuts it short.
    """
    if missing := missing_prerequisites():
        raise FreshMachineError("this machine lacks: " + "; ".join(missing))
    command = readme_run_command()
    if not port_free(port := _api_port()):
        raise FreshMachineError(f"port {port} is taken here and the run shares this network: stop the stack on it")
    tarball = rootfs.tarball()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fresh-machine-"))
    try:
        with log_path.open("w") as log:
            started = time.monotonic()
            tree, root = work / "tree.tar", work / "root"
            _note(log, started, f"fresh-machine: {tarball.name}, {working_tree_tar(tree)} files of the working tree")
            root.mkdir()  # only a mount point here: the root is on a tmpfs in the namespaces
            script = _init_script(root, tarball, tree, command)
            return _run(script, command, log, started, timeout=timeout, grace=grace, cancel=cancel)
    finally:
        _remove(work)


def _remove(work: Path) -> None:
    prefix = f"{work.resolve()}/"
    if any(line.split()[4].startswith(prefix) for line in Path("/proc/self/mountinfo").read_text().splitlines()):
        # Never (the namespaces' mounts are private), but deleting through a bind of /dev would empty the host's.
        raise FreshMachineError(f"{work} has mounts in it; left in place")
    shutil.rmtree(work)


def _run(
    script: str,
    command: str,
    log: IO[str],
    started: float,
    *,
    timeout: float,
    grace: float,
    cancel: threading.Event | None,
) -> FreshRun:
    # setpriv: if this process dies, unshare gets SIGKILL, and --kill-child takes the namespaces down with it.
    namespaces = ["setpriv", "--pdeathsig", "KILL", "unshare", "--mount", "--pid", "--fork", "--kill-child"]
    proc = subprocess.Popen(  # its own process group, the one Ctrl-C would reach in a terminal
        [*namespaces, "--", "sh", "-euc", script],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    output = _Output(proc.stdout, log, started)
    deadline = time.monotonic() + timeout
    ended = None
    while ended is None and not output.running.is_set() and time.monotonic() < deadline:
        if cancel is not None and cancel.is_set():
            break
        ended = _wait(proc.pid, min(deadline, time.monotonic() + 1))
    cut_short = ended is None and not output.running.is_set()
    sent_sigint = ended is None
    if sent_sigint:
        _note(log, started, "fresh-machine: SIGINT")
        os.killpg(proc.pid, signal.SIGINT)
        ended = _wait(proc.pid, time.monotonic() + grace)
    if ended is None:
        _note(log, started, f"fresh-machine: still running {grace:.0f}s after SIGINT, killing the namespaces")
        os.killpg(proc.pid, signal.SIGKILL)
        ended = _wait(proc.pid, time.monotonic() + 60)
    output.thread.join(timeout=30)
    returncode, cpu = ended if ended is not None else (None, 0.0)
    proc.returncode = returncode
    wall = time.monotonic() - started
    _note(log, started, f"fresh-machine: exit {returncode}; {wall:.0f}s wall, {cpu:.0f}s CPU")
    return FreshRun(
        command=command,
        log=Path(log.name),
        wall_seconds=wall,
        cpu_seconds=cpu,
        returncode=returncode,
        delivered=output.delivered,
        stopped=sent_sigint and output.stopped and returncode in (0, 128 + signal.SIGINT),
        cut_short=cut_short,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.fresh_machine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG, help="the run's output (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=20 * 60, help="seconds up to the demo (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        result = run(args.log, timeout=args.timeout)
    except (FreshMachineError, rootfs.RootfsError) as exc:
        print(f"fresh-machine: {exc}")
        return 1
    delivered = "no demo" if result.delivered is None else "{}/{} delivered".format(*result.delivered)
    stop = "stopped cleanly on SIGINT" if result.stopped else "did NOT stop cleanly on SIGINT"
    print(f"fresh-machine: `{result.command}`: {delivered}, {stop}, exit {result.returncode}")
    print(f"fresh-machine: {result.wall_seconds:.0f}s wall, {result.cpu_seconds:.0f}s CPU; log: {result.log}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
