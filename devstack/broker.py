"""A real single-node Apache Kafka (KRaft) broker for local development and tests.

The Kafka jars are fetched from Maven Central with ``devstack/kafka/pom.xml``
into ``.cache/kafka/<version>/libs`` and the broker runs as
``java -cp <libs>/* kafka.Kafka server.properties`` -- no Docker, no ZooKeeper.

Library use::

    with KafkaBroker(tmp_path / "kafka") as broker:
        ensure_topics(broker.bootstrap, {"purchases": 3})
        ...

CLI (see ``python -m devstack.broker --help``)::

    python -m devstack.broker start      # daemonizes, prints 127.0.0.1:<port>
    python -m devstack.broker status
    python -m devstack.broker stop

If ``KAFKA_BOOTSTRAP_SERVERS`` is set, ``start`` only waits for that cluster
to answer and prints it.

Everything a broker owns lives in its ``data_dir``: ``devstack.json`` (chosen
ports + cluster id), ``server.properties``, ``log4j2.properties``, the KRaft
log dir ``kraft/``, ``broker.log`` (log4j), ``broker.out`` (JVM stdout/stderr)
and ``broker.pid`` (plus ``start.lock``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from kafka import KafkaAdminClient
from kafka.errors import (
    KafkaError,
    TopicAlreadyExistsError,
)
from kafka.errors import for_code as _kafka_error_for_code

__all__ = [
    "BOOTSTRAP_ENV",
    "DEFAULT_CACHE_DIR",
    "DEFAULT_DATA_DIR",
    "KAFKA_VERSION",
    "REPO_ROOT",
    "BrokerError",
    "BrokerTimeoutError",
    "KafkaBroker",
    "MissingToolError",
    "ensure_topics",
    "fetch",
    "is_fetched",
    "main",
    "wait_until_ready",
]

KAFKA_VERSION = "4.3.1"
"""Kafka release fetched from Maven Central (passed to the pom as -Dkafka.version)."""

REPO_ROOT = Path(__file__).resolve().parents[1]
POM_FILE = Path(__file__).resolve().parent / "kafka" / "pom.xml"
DEFAULT_CACHE_DIR = REPO_ROOT / ".cache" / "kafka" / KAFKA_VERSION
DEFAULT_DATA_DIR = REPO_ROOT / ".devstack" / "kafka"
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"

_HOST = "127.0.0.1"
_NODE_ID = 1
_KAFKA_JAR = "kafka_2.13-{version}.jar"
_FETCH_MARKER = ".complete"


class BrokerError(RuntimeError):
    """Anything that goes wrong while fetching, starting or talking to the broker."""


class MissingToolError(BrokerError):
    """A required executable (``java`` or ``mvn``) is not installed / not on PATH."""

    def __init__(self, tool: str, hint: str) -> None:
        super().__init__(f"required tool {tool!r} not found: {hint}")
        self.tool = tool


class BrokerTimeoutError(BrokerError, TimeoutError):
    """The broker/cluster did not become ready (or stop) in time."""


# --------------------------------------------------------------------------- tools


def _find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise MissingToolError(
            "java",
            "Kafka 4.x needs a Java 17+ runtime; install one "
            "(e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME",
        )
    return found


def _find_mvn() -> str:
    found = shutil.which("mvn")
    if found is None:
        raise MissingToolError(
            "mvn",
            "Apache Maven is used to download the Kafka jars from Maven Central; "
            "install it (e.g. `apt-get install maven`)",
        )
    return found


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- fetch


def _libs_dir(cache_dir: Path) -> Path:
    return cache_dir / "libs"


def is_fetched(cache_dir: Path | None = None, *, version: str = KAFKA_VERSION) -> bool:
    """True if :func:`fetch` would return immediately without running Maven."""
    cache_dir = (cache_dir or REPO_ROOT / ".cache" / "kafka" / version).resolve()
    libs = _libs_dir(cache_dir)
    return (cache_dir / _FETCH_MARKER).is_file() and (libs / _KAFKA_JAR.format(version=version)).is_file()


def fetch(cache_dir: Path | None = None, *, version: str = KAFKA_VERSION) -> Path:
    """Download the Kafka broker jars (once) and return the directory holding them.

    Idempotent and safe to call concurrently (file lock); Maven only runs when
    the jars are not there yet. Jars land in ``<cache_dir>/libs``; the default
    cache dir is ``.cache/kafka/<version>`` under the repo root (git-ignored).
    """
    cache_dir = (cache_dir or REPO_ROOT / ".cache" / "kafka" / version).resolve()
    libs = _libs_dir(cache_dir)
    if is_fetched(cache_dir, version=version):
        return libs
    mvn = _find_mvn()
    _find_java()  # Maven itself needs a JDK; fail with the clearer message.
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache_dir / ".lock"):
        if is_fetched(cache_dir, version=version):  # another process won the race
            return libs
        staging = Path(tempfile.mkdtemp(prefix="libs.", dir=cache_dir))
        try:
            cmd = [
                mvn,
                "-B",
                "-q",
                "-f",
                str(POM_FILE),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                f"-Dkafka.version={version}",
            ]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
                raise BrokerError(
                    f"fetching Kafka {version} with Maven failed (exit {result.returncode}): {' '.join(cmd)}\n{output}"
                )
            if not (staging / _KAFKA_JAR.format(version=version)).is_file():
                raise BrokerError(f"Maven succeeded but {_KAFKA_JAR.format(version=version)} is missing from {staging}")
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
            (cache_dir / _FETCH_MARKER).write_text(version + "\n")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return libs


# --------------------------------------------------------------------------- readiness


def _parse_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    addresses: list[tuple[str, int]] = []
    for raw in bootstrap.split(","):
        item = raw.strip()
        if not item:
            continue
        if "://" in item:  # tolerate PLAINTEXT://host:port
            item = item.split("://", 1)[1]
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"bad bootstrap address {raw!r} (expected host:port)")
        addresses.append((host.strip("[]") or _HOST, int(port)))
    if not addresses:
        raise ValueError("empty bootstrap server list")
    return addresses


def _tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _remaining_ms(deadline: float, minimum: int = 100) -> int:
    return max(minimum, int((deadline - time.monotonic()) * 1000))


def _admin(bootstrap: str, deadline: float) -> Any:
    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="devstack",
            bootstrap_timeout_ms=_remaining_ms(deadline, 1000),
            request_timeout_ms=min(10_000, _remaining_ms(deadline, 1000)),
        )
    except KafkaError as exc:
        raise BrokerTimeoutError(f"cannot bootstrap from {bootstrap}: {exc}") from exc


def _wait_ready(bootstrap: str, deadline: float, check_alive: Callable[[], None]) -> None:
    addresses = _parse_bootstrap(bootstrap)
    # Cheap TCP gate first: a failed KafkaAdminClient construction leaks its IO thread.
    while not any(_tcp_open(host, port) for host, port in addresses):
        check_alive()
        if time.monotonic() >= deadline:
            raise BrokerTimeoutError(f"nothing is listening on {bootstrap}")
        time.sleep(0.1)
    check_alive()
    admin = _admin(bootstrap, deadline)
    try:
        last_error = "no brokers in metadata"
        while True:
            try:
                cluster = admin.describe_cluster()
                if cluster.get("brokers"):
                    return
            except KafkaError as exc:
                last_error = repr(exc)
            check_alive()
            if time.monotonic() >= deadline:
                raise BrokerTimeoutError(f"{bootstrap} did not answer a metadata request in time: {last_error}")
            time.sleep(0.2)
    finally:
        admin.close()


def wait_until_ready(bootstrap: str, timeout: float = 60.0) -> None:
    """Block until the cluster at ``bootstrap`` answers a metadata request with a broker.

    Raises :class:`BrokerTimeoutError` after ``timeout`` seconds.
    """
    _wait_ready(bootstrap, time.monotonic() + timeout, lambda: None)


def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> None:
    """Create the missing topics (``name -> partitions``); existing ones are left as is.

    Returns once every topic is in the metadata with a leader for each partition.
    """
    if not topics:
        return
    for name, partitions in topics.items():
        if partitions < 1:
            raise ValueError(f"topic {name!r}: partitions must be >= 1, got {partitions}")
    deadline = time.monotonic() + timeout
    wait_until_ready(bootstrap, timeout)
    admin = _admin(bootstrap, deadline)
    try:
        request = {
            name: {"num_partitions": partitions, "replication_factor": replication_factor}
            for name, partitions in topics.items()
        }
        try:
            result = admin.create_topics(request, timeout_ms=_remaining_ms(deadline, 1000), raise_errors=False)
        except KafkaError as exc:
            raise BrokerError(f"CreateTopics on {bootstrap} failed: {exc!r}") from exc
        for topic in result.get("topics", []):
            code = topic.get("error_code", 0)
            if code not in (0, TopicAlreadyExistsError.errno):
                raise BrokerError(
                    f"creating topic {topic.get('name')!r} failed: "
                    f"{_kafka_error_for_code(code).__name__}: {topic.get('error_message')}"
                )
        try:
            admin.wait_for_topics(list(topics), timeout_ms=_remaining_ms(deadline, 1000))
        except KafkaError as exc:
            raise BrokerTimeoutError(f"topics not ready on {bootstrap}: {exc}") from exc
    finally:
        admin.close()


# --------------------------------------------------------------------------- broker


@dataclass(frozen=True)
class _State:
    port: int
    controller_port: int
    cluster_id: str


def _free_port(exclude: Sequence[int] = ()) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((_HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in exclude:
            return port


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # like the JVM
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
    return True


def _new_cluster_id() -> str:
    # Same shape as Kafka's Uuid.randomUuid().toString(): url-safe base64, no padding,
    # never starting with '-' (it would be parsed as a CLI flag).
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) counts as dead
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class KafkaBroker:
    """One KRaft node (broker + controller) listening on 127.0.0.1 only.

    ``port``/``controller_port`` of 0 pick free ports on first start; the chosen
    ports are persisted in ``data_dir`` so a restart with the same data dir keeps
    its address and data (storage is formatted only once).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = 0,
        controller_port: int = 0,
        *,
        cache_dir: Path | None = None,
        heap: str = "512m",
        extra_config: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._requested_port = port
        self._requested_controller_port = controller_port
        self._cache_dir = cache_dir
        self._heap = heap
        self._extra_config = dict(extra_config or {})
        self._proc: subprocess.Popen[bytes] | None = None

    # -- paths -------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.data_dir / "devstack.json"

    @property
    def log_dir(self) -> Path:
        """The Kafka ``log.dirs`` (topic data and KRaft metadata)."""
        return self.data_dir / "kraft"

    @property
    def server_properties(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_properties(self) -> Path:
        return self.data_dir / "log4j2.properties"

    @property
    def log_file(self) -> Path:
        """log4j output of the broker."""
        return self.data_dir / "broker.log"

    @property
    def stdout_file(self) -> Path:
        """JVM stdout/stderr (crashes before log4j is up end up here)."""
        return self.data_dir / "broker.out"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    # -- addresses ---------------------------------------------------------

    def _load_state(self) -> _State | None:
        try:
            raw = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise BrokerError(f"unreadable broker state {self.state_file}: {exc}") from exc
        return _State(
            port=int(raw["port"]),
            controller_port=int(raw["controller_port"]),
            cluster_id=str(raw["cluster_id"]),
        )

    def _save_state(self, state: _State) -> None:
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
        tmp.replace(self.state_file)

    @property
    def port(self) -> int:
        state = self._load_state()
        if state is not None:
            return state.port
        if self._requested_port:
            return self._requested_port
        raise BrokerError(f"broker in {self.data_dir} has not been started yet (no port)")

    @property
    def controller_port(self) -> int:
        state = self._load_state()
        if state is not None:
            return state.controller_port
        if self._requested_controller_port:
            return self._requested_controller_port
        raise BrokerError(f"broker in {self.data_dir} has not been started yet (no port)")

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:<port>`` (available once the broker has been started once)."""
        return f"{_HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the running JVM (also one started by another process), else None."""
        return self._current_pid()

    def _resolve_state(self) -> _State:
        state = self._load_state()
        if state is None:
            port = self._requested_port or _free_port()
            controller_port = self._requested_controller_port or _free_port(exclude=[port])
            if port == controller_port:
                raise BrokerError(f"port and controller_port must differ (both {port})")
            state = _State(port, controller_port, _new_cluster_id())
            self._save_state(state)
            return state
        if self._requested_controller_port and self._requested_controller_port != state.controller_port:
            raise BrokerError(
                f"{self.data_dir} was formatted with controller port {state.controller_port}; "
                f"the KRaft voter set cannot move to {self._requested_controller_port}. "
                "Use a fresh data dir."
            )
        if self._requested_port and self._requested_port != state.port:
            state = _State(self._requested_port, state.controller_port, state.cluster_id)
            self._save_state(state)
        return state

    # -- config ------------------------------------------------------------

    def _server_config(self, state: _State) -> dict[str, str]:
        plaintext = f"PLAINTEXT://{_HOST}:{state.port}"
        controller = f"CONTROLLER://{_HOST}:{state.controller_port}"
        config = {
            "process.roles": "broker,controller",
            "node.id": str(_NODE_ID),
            "controller.quorum.bootstrap.servers": f"{_HOST}:{state.controller_port}",
            "listeners": f"{plaintext},{controller}",
            "advertised.listeners": f"{plaintext},{controller}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a SIGKILL the controller rejects the re-registration
            # (DUPLICATE_BROKER_REGISTRATION) until the old session expires;
            # the 9s default makes every chaos restart ~10s slower.
            "broker.heartbeat.interval.ms": "1000",
            "broker.session.timeout.ms": "4000",
        }
        config.update(self._extra_config)
        return config

    def _log4j_config(self) -> str:
        return "\n".join(
            [
                "status = warn",
                "appender.file.type = RollingFile",
                "appender.file.name = FILE",
                f"appender.file.fileName = {self.log_file}",
                f"appender.file.filePattern = {self.log_file}.%i",
                "appender.file.layout.type = PatternLayout",
                "appender.file.layout.pattern = [%d] %p %m (%c)%n",
                "appender.file.policies.type = Policies",
                "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
                "appender.file.policies.size.size = 20MB",
                "appender.file.strategy.type = DefaultRolloverStrategy",
                "appender.file.strategy.max = 3",
                "rootLogger.level = INFO",
                "rootLogger.appenderRef.file.ref = FILE",
                "logger.request.name = kafka.request.logger",
                "logger.request.level = WARN",
                "",
            ]
        )

    def _write_config(self, state: _State) -> None:
        lines = ["# generated by devstack/broker.py -- edits are overwritten on start"]
        lines += [f"{key}={value}" for key, value in self._server_config(state).items()]
        self.server_properties.write_text("\n".join(lines) + "\n")
        self.log4j_properties.write_text(self._log4j_config())

    def _jvm(self, java: str, libs: Path) -> list[str]:
        return [
            java,
            f"-Xmx{self._heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_properties}",
            # Keep log4j alive while Kafka's own shutdown hook logs (else those lines
            # fall back to a SimpleLogger on stdout). The file appender flushes per line.
            "-Dlog4j2.shutdownHookEnabled=false",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp",
            str(libs / "*"),
        ]

    def is_formatted(self) -> bool:
        return (self.log_dir / "meta.properties").is_file()

    def _format(self, java: str, libs: Path, state: _State) -> None:
        cmd = [
            *self._jvm(java, libs),
            "kafka.tools.StorageTool",
            "format",
            "--config",
            str(self.server_properties),
            "--cluster-id",
            state.cluster_id,
            "--standalone",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=self.data_dir)
        if result.returncode != 0 or not self.is_formatted():
            output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise BrokerError(
                f"formatting KRaft storage in {self.log_dir} failed (exit {result.returncode}):\n{output}"
            )

    # -- process -----------------------------------------------------------

    def _read_pid_file(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_our_jvm(self, pid: int) -> bool:
        if not _pid_alive(pid):
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return not Path("/proc/self").exists()  # no procfs: trust the pid file
        args = [arg.decode(errors="replace") for arg in cmdline]
        return "kafka.Kafka" in args and str(self.server_properties) in args

    def _current_pid(self) -> int | None:
        if self._proc is not None:
            if self._proc.poll() is None:
                return self._proc.pid
            self._proc = None
        pid = self._read_pid_file()
        if pid is not None and self._is_our_jvm(pid):
            return pid
        if pid is not None:
            self.pid_file.unlink(missing_ok=True)  # stale
        return None

    def is_running(self) -> bool:
        """True while the broker JVM for this data dir is alive (started here or elsewhere)."""
        return self._current_pid() is not None

    def _check_alive(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is not None:
            raise BrokerError(
                f"Kafka exited with code {proc.returncode} during startup.\n"
                f"--- {self.stdout_file} ---\n{_tail(self.stdout_file)}\n"
                f"--- {self.log_file} ---\n{_tail(self.log_file)}"
            )

    def start(self, timeout: float = 60.0) -> str:
        """Start (formatting storage on first use) and wait until it serves metadata.

        Returns the bootstrap address. If the broker for this data dir is already
        running (e.g. started by the CLI), just waits for it.
        """
        if self.is_running():
            wait_until_ready(self.bootstrap, timeout)
            return self.bootstrap
        java = _find_java()
        libs = fetch(self._cache_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.data_dir / "start.lock"):  # concurrent starts of one data dir
            if self.is_running():
                wait_until_ready(self.bootstrap, timeout)
                return self.bootstrap
            state = self._resolve_state()
            for name, port in (("port", state.port), ("controller port", state.controller_port)):
                if not _port_free(port):
                    raise BrokerError(
                        f"{name} {_HOST}:{port} of the broker in {self.data_dir} is already in use by another process"
                    )
            self._write_config(state)
            if not self.is_formatted():
                self._format(java, libs, state)
            cmd = [*self._jvm(java, libs), "kafka.Kafka", str(self.server_properties)]
            deadline = time.monotonic() + timeout  # a cold fetch/format does not eat into it
            with self.stdout_file.open("wb") as out:  # only the latest run, for error tails
                out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n".encode())
                out.flush()
                self._proc = subprocess.Popen(
                    cmd,
                    cwd=self.data_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own session + process group, survives our exit
                )
            try:
                self.pid_file.write_text(f"{self._proc.pid}\n")
                _wait_ready(self.bootstrap, deadline, self._check_alive)
            except BaseException:
                self.kill()
                raise
        return self.bootstrap

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        proc = self._proc
        if proc is not None and proc.pid == pid:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while _pid_alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def _forget(self) -> None:
        self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait for a clean (controlled) shutdown; SIGKILL after ``timeout``."""
        pid = self._current_pid()
        if pid is None:
            self._forget()
            return
        self._signal(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout):
            self._signal(pid, signal.SIGKILL)
            if not self._wait_exit(pid, 10.0):
                raise BrokerTimeoutError(f"Kafka (pid {pid}) survived SIGKILL")
        self._forget()

    def kill(self) -> None:
        """SIGKILL the broker (no clean shutdown) -- for chaos tests."""
        pid = self._current_pid()
        if pid is not None:
            self._signal(pid, signal.SIGKILL)
            if not self._wait_exit(pid, 10.0):
                raise BrokerTimeoutError(f"Kafka (pid {pid}) survived SIGKILL")
        self._forget()

    def restart(self, timeout: float = 60.0) -> str:
        """Clean stop, then start on the same data dir and ports."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"KafkaBroker(data_dir={str(self.data_dir)!r})"


# --------------------------------------------------------------------------- CLI


def _eprint(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cmd_fetch(args: argparse.Namespace) -> int:
    if not is_fetched(args.cache_dir):
        _eprint(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central ...")
    print(fetch(args.cache_dir))
    return 0


def _cmd_start(args: argparse.Namespace) -> int:
    external = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if external:
        _eprint(f"{BOOTSTRAP_ENV} is set; waiting for {external} instead of starting a broker")
        wait_until_ready(external, args.timeout)
        print(external, flush=True)
        return 0
    if not is_fetched(args.cache_dir):
        _eprint(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central (first run) ...")
    broker = KafkaBroker(args.data_dir, args.port, args.controller_port, cache_dir=args.cache_dir)
    bootstrap = broker.start(args.timeout)
    print(bootstrap, flush=True)
    if not args.foreground:
        _eprint(f"Kafka running (pid {broker.pid}), logs: {broker.log_file}")
        return 0
    stop_requested = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    while not stop_requested.wait(0.5):
        if not broker.is_running():
            _eprint(f"Kafka exited unexpectedly; see {broker.log_file}")
            return 1
    broker.stop()
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    broker = KafkaBroker(args.data_dir)
    was_running = broker.is_running()
    broker.stop(args.timeout)
    _eprint("stopped" if was_running else "not running")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    external = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if external:
        try:
            wait_until_ready(external, args.timeout)
        except BrokerError as exc:
            print(f"external {external}: unreachable ({exc})")
            return 1
        print(f"external {external}: ready")
        return 0
    broker = KafkaBroker(args.data_dir)
    pid = broker.pid
    if pid is None:
        print("stopped")
        return 3
    try:
        wait_until_ready(broker.bootstrap, args.timeout)
    except BrokerError:
        print(f"running (pid {pid}) {broker.bootstrap}: not answering")
        return 1
    print(f"running (pid {pid}) {broker.bootstrap}: ready")
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.broker",
        description=f"Local single-node Apache Kafka {KAFKA_VERSION} (KRaft) broker.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir",
            type=Path,
            default=DEFAULT_DATA_DIR,
            help="broker state dir (default: %(default)s)",
        )

    def cache_dir_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--cache-dir",
            type=Path,
            default=DEFAULT_CACHE_DIR,
            help="where the Kafka jars are cached (default: %(default)s)",
        )

    start = sub.add_parser("start", help="start the broker in the background and print its bootstrap address")
    data_dir_arg(start)
    cache_dir_arg(start)
    start.add_argument("--port", type=int, default=0, help="client port (default: free/persisted)")
    start.add_argument("--controller-port", type=int, default=0, help="KRaft controller port (default: free)")
    start.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    start.add_argument("--foreground", action="store_true", help="stay attached; stop the broker on Ctrl-C/SIGTERM")
    start.set_defaults(func=_cmd_start)

    stop = sub.add_parser("stop", help="stop the broker (SIGTERM, SIGKILL after --timeout)")
    data_dir_arg(stop)
    stop.add_argument("--timeout", type=float, default=30.0)
    stop.set_defaults(func=_cmd_stop)

    status = sub.add_parser("status", help="exit 0 if the broker answers, 3 if stopped, else 1")
    data_dir_arg(status)
    status.add_argument("--timeout", type=float, default=5.0)
    status.set_defaults(func=_cmd_status)

    fetch_cmd = sub.add_parser("fetch", help="download the Kafka jars and print their directory")
    cache_dir_arg(fetch_cmd)
    fetch_cmd.set_defaults(func=_cmd_fetch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except BrokerError as exc:
        _eprint(f"error: {exc}")
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
