"""``sam local invoke`` as docs/deploy.md documents it: SAM CLI, Docker, Lambda's python3.13 image, the local stack.

The commands are read from the doc's block marked ``sam-local-invoke`` and run as written, in order, in a working
folder (``.cache/sam-local``, kept so that ``sam build``'s cache lasts) with the repository's template, samconfig
and lock (copies) and code (links), whose ``.devstack`` is this suite's stack. Their setup lines are checked against what the suite does:
``docker network create`` (the bridge and subnet it makes in the project's Docker engine) and ``python -m devstack
up`` (the stack's ``--functions-host`` and ``--services-only``).

Needs root, Debian's ``docker.io`` and ``debootstrap`` (``make test`` installs them): without them the suite fails
and says what to install; it never skips.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack import lambda_image
from devstack.docker_engine import Engine
from devstack.stack import LocalStack, free_ports_config

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deploy.md"
MARKER = "<!-- sam-local-invoke"
WORKDIR = ROOT / ".cache" / "sam-local"
COPIED = ("template.yaml", "samconfig.toml", "requirements.lock")  # SAM CLI resolves a linked template's folder
LINKED = ("events", "functions", "layers")


@dataclass(frozen=True)
class Command:
    env: dict[str, str]  # leading VAR=value assignments
    argv: list[str]

    @property
    def text(self) -> str:
        return " ".join([*(f"{k}={v}" for k, v in self.env.items()), *self.argv])


def documented_commands(doc: Path = DOC) -> list[Command]:
    """The commands of the doc's ``sam-local-invoke`` block, comments left out."""
    text = doc.read_text()
    start = text.index(MARKER)
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block is not None, f"{doc}: no ```bash block after {MARKER}"
    commands = []
    for line in block.group(1).splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        env = {}
        while "=" in words[0] and not words[0].startswith("-"):
            name, value = words.pop(0).split("=", 1)
            env[name] = value
        commands.append(Command(env, words))
    return commands


def _option(argv: list[str], name: str) -> str:
    assert name in argv, f"{' '.join(argv)}: no {name}"
    return argv[argv.index(name) + 1]


@dataclass(frozen=True)
class Setup:
    network: str
    subnet: str
    functions_host: str
    sam: list[Command]  # sam build, then the invocations


def documented_setup() -> Setup:
    commands = documented_commands()
    network = next(c for c in commands if c.argv[:3] == ["docker", "network", "create"])
    up = next(c for c in commands if c.argv[:4] == ["python", "-m", "devstack", "up"])
    assert "--services-only" in up.argv, "the stack must not run the functions the doc invokes"
    with (ROOT / "samconfig.toml").open("rb") as handle:
        local = tomllib.load(handle)["local"]
    name = network.argv[-1]
    assert local["local_invoke"]["parameters"]["docker_network"] == name, "samconfig's local network is the doc's"
    subnet = _option(network.argv, "--subnet")
    host = _option(up.argv, "--functions-host")
    assert host == str(next(ipaddress.ip_network(subnet).hosts())), "the stack listens on the bridge's gateway"
    return Setup(name, subnet, host, [c for c in commands if c.argv[0] == "sam"])


@pytest.fixture(scope="session")
def setup() -> Setup:
    return documented_setup()


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The project's Docker engine with the stand-in of Lambda's python3.13 image (both cached across runs)."""
    missing = [tool for tool in ("dockerd", "docker", "debootstrap") if shutil.which(tool) is None]
    if missing and not (missing == ["dockerd"] and Path("/usr/sbin/dockerd").exists()):
        pytest.fail(f"sam local invoke needs {', '.join(missing)}: apt-get install docker.io debootstrap (make test)")
    engine = Engine()
    started = not engine.running()
    engine.start()
    try:
        lambda_image.ensure(engine)
        yield engine
    finally:
        if started:
            engine.stop()


@pytest.fixture(scope="session")
def stack(setup: Setup, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The local stack as the doc starts it: what the functions call on the bridge's gateway, no function."""
    gateway = engine.network(setup.network, setup.subnet)
    assert gateway == setup.functions_host
    config = free_ports_config(tmp_path_factory.mktemp("samlocal-stack"), functions_host=gateway, functions=False)
    with LocalStack(config, progress=lambda line: None) as stack:
        yield stack


@pytest.fixture(scope="session")
def workdir(stack: LocalStack) -> Path:
    """Where the doc's commands run: the repository's files linked, ``.devstack`` the suite's stack."""
    WORKDIR.mkdir(parents=True, exist_ok=True)
    for name in (*COPIED, *LINKED, ".devstack"):
        path = WORKDIR / name
        if path.is_symlink() or path.exists():
            path.unlink()
        if name in COPIED:
            shutil.copy2(ROOT / name, path)
        else:
            path.symlink_to(stack.data_dir if name == ".devstack" else ROOT / name)
    return WORKDIR


@pytest.fixture(scope="session")
def run(engine: Engine, workdir: Path):  # type: ignore[no-untyped-def]
    """``run(command)``: a documented command in the working folder, against the project's engine."""
    env = {
        **os.environ,
        "DOCKER_HOST": engine.host,
        "SAM_CLI_TELEMETRY": "0",
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }

    def run(command: Command, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        argv = [str(ROOT / ".venv" / "bin" / "sam"), *command.argv[1:]]
        return subprocess.run(
            argv, cwd=workdir, env={**env, **command.env}, capture_output=True, text=True, timeout=timeout, check=False
        )

    return run
