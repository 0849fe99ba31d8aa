"""One local Apache Kafka (KRaft) node as a process: format its storage once, start it, wait for it, stop it.

The broker runs as ``java -cp <libs>/* kafka.Kafka server.properties`` from the jars ``devstack.broker_fetch``
fetched: no Docker, no ZooKeeper. Everything a broker owns lives in its ``data_dir``: ``devstack.json`` (chosen
ports + cluster id), ``server.properties``, ``log4j2.properties``, the KRaft log dir ``kraft/``, ``broker.log``
(log4j), ``broker.out`` (JVM stdout/stderr) and ``broker.pid`` (plus ``start.lock``).

The JVM runs in its own session and outlives the process that started it (``python -m devstack.broker start``
returns while it runs), so it is started with ``subprocess`` rather than an executor that ends its processes when
Python exits; any process finds it again through the pid file, and ``psutil`` says whether that pid still runs it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import psutil

from devstack.broker_cluster import HOST, wait_until_ready
from devstack.broker_fetch import REPO_ROOT, BrokerError, BrokerTimeoutError, fetch, file_lock, find_java
from devstack.lifecycle import Lifecycle
from devstack.ports import free_port, port_free

DEFAULT_DATA_DIR = REPO_ROOT / ".devstack" / "kafka"

_NODE_ID = 1


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class _State:
    port: int
    controller_port: int
    cluster_id: str
    sasl_port: int = 0  # 0: chosen on the next start (a data dir from before the SASL listener)


def _new_cluster_id() -> str:
    # Same shape as Kafka's Uuid.randomUuid().toString(): url-safe base64, no padding,
    # never starting with '-' (it would be parsed as a CLI flag).
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaBroker(Lifecycle):
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
        functions_host: str = HOST,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        # Where the functions' SASL listener listens and is advertised: 127.0.0.1, or a Docker bridge's gateway
        # so that the containers of `sam local invoke` reach it (the other listeners stay on 127.0.0.1).
        self.functions_host = functions_host
        self._requested_port = port
        self._requested_controller_port = controller_port
        self._cache_dir = cache_dir
        self._heap = heap
        self._extra_config = dict(extra_config or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self.state_file = self.data_dir / "devstack.json"
        self.log_dir = self.data_dir / "kraft"  # Kafka's log.dirs: topic data and KRaft metadata
        self.server_properties = self.data_dir / "server.properties"
        self.log4j_properties = self.data_dir / "log4j2.properties"
        self.log_file = self.data_dir / "broker.log"  # log4j output of the broker
        self.stdout_file = self.data_dir / "broker.out"  # JVM stdout/stderr: crashes before log4j is up
        self.pid_file = self.data_dir / "broker.pid"

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
            sasl_port=int(raw.get("sasl_port", 0)),
        )

    def _save_state(self, state: _State) -> None:
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
        tmp.replace(self.state_file)

    def _chosen(self, port: str, requested: int) -> int:
        state = self._load_state()
        if state is not None:
            return int(getattr(state, port))
        if requested:
            return requested
        raise BrokerError(f"broker in {self.data_dir} has not been started yet (no port)")

    @property
    def port(self) -> int:
        return self._chosen("port", self._requested_port)

    @property
    def controller_port(self) -> int:
        return self._chosen("controller_port", self._requested_controller_port)

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:<port>`` (available once the broker has been started once)."""
        return f"{HOST}:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        """``<functions_host>:<port>``: the SASL/SCRAM listener the functions connect to, each as its own user."""
        state = self._load_state()
        if state is None or not state.sasl_port:
            raise BrokerError(f"broker in {self.data_dir} has not been started yet (no SASL port)")
        return f"{self.functions_host}:{state.sasl_port}"

    @property
    def authorizer_logs(self) -> list[Path]:
        """The authorizer's log (every authorization, allowed or denied) and its rolled-over files."""
        return sorted(self.data_dir.glob("authorizer.log*"))

    @property
    def pid(self) -> int | None:
        """PID of the running JVM (also one started by another process), else None."""
        return self._current_pid()

    def _resolve_state(self) -> _State:
        state = self._load_state()
        if state is None:
            port = self._requested_port or free_port()
            controller_port = self._requested_controller_port or free_port(exclude=[port])
            if port == controller_port:
                raise BrokerError(f"port and controller_port must differ (both {port})")
            sasl_port = free_port(self.functions_host, exclude=[port, controller_port])
            state = _State(port, controller_port, _new_cluster_id(), sasl_port)
            self._save_state(state)
            return state
        if not state.sasl_port:
            state = replace(
                state, sasl_port=free_port(self.functions_host, exclude=[state.port, state.controller_port])
            )
            self._save_state(state)
        if self._requested_controller_port and self._requested_controller_port != state.controller_port:
            raise BrokerError(
                f"{self.data_dir} was formatted with controller port {state.controller_port}; "
                f"the KRaft voter set cannot move to {self._requested_controller_port}. "
                "Use a fresh data dir."
            )
        if self._requested_port and self._requested_port != state.port:
            state = replace(state, port=self._requested_port)  # the SASL port stays
            self._save_state(state)
        return state

    # -- config ------------------------------------------------------------

    def _server_config(self, state: _State) -> dict[str, str]:
        plaintext = f"PLAINTEXT://{HOST}:{state.port}"
        controller = f"CONTROLLER://{HOST}:{state.controller_port}"
        functions = f"FUNCTIONS://{self.functions_host}:{state.sasl_port}"
        config = {
            "process.roles": "broker,controller",
            "node.id": str(_NODE_ID),
            "controller.quorum.bootstrap.servers": f"{HOST}:{state.controller_port}",
            "listeners": f"{plaintext},{controller},{functions}",
            "advertised.listeners": f"{plaintext},{controller},{functions}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,FUNCTIONS:SASL_PLAINTEXT",
            # Kafka's own authorizer, nothing allowed without an ACL (devstack.kafka_acls writes each function's
            # from its kafka-cluster statements). The plaintext listeners (the stack's admin work, tests, the
            # controller) are the super user; the functions connect to FUNCTIONS with SASL/SCRAM, each as its own
            # principal (Kafka documentation, "Authorization and ACLs" and "Authentication using SASL/SCRAM").
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": "User:ANONYMOUS",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.functions.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.functions.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
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
                # Every authorization (allowed: DEBUG, denied: INFO) in its own file, for the least-privilege report.
                "appender.authorizer.type = RollingFile",
                "appender.authorizer.name = AUTHORIZER",
                f"appender.authorizer.fileName = {self.data_dir / 'authorizer.log'}",
                f"appender.authorizer.filePattern = {self.data_dir / 'authorizer.log'}.%i",
                "appender.authorizer.layout.type = PatternLayout",
                "appender.authorizer.layout.pattern = [%d] %p %m%n",
                # The super user's own authorizations (the stack's admin work, the broker's) are left out.
                "appender.authorizer.filter.superuser.type = RegexFilter",
                "appender.authorizer.filter.superuser.regex = .*User:ANONYMOUS .*",
                "appender.authorizer.filter.superuser.onMatch = DENY",
                "appender.authorizer.filter.superuser.onMismatch = NEUTRAL",
                "appender.authorizer.policies.type = Policies",
                "appender.authorizer.policies.size.type = SizeBasedTriggeringPolicy",
                "appender.authorizer.policies.size.size = 50MB",
                "appender.authorizer.strategy.type = DefaultRolloverStrategy",
                "appender.authorizer.strategy.max = 5",
                "logger.authorizer.name = kafka.authorizer.logger",
                "logger.authorizer.level = DEBUG",
                "logger.authorizer.additivity = false",
                "logger.authorizer.appenderRef.file.ref = AUTHORIZER",
                "",
            ]
        )

    def _write_config(self, state: _State) -> None:
        lines = ["# generated by devstack/broker_process.py -- edits are overwritten on start"]
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
        try:
            args = psutil.Process(pid).cmdline()  # gone, or a zombie (exited, not yet reaped): raises
        except psutil.Error:
            return False
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
        java = find_java()
        libs = fetch(self._cache_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.data_dir / "start.lock"):  # concurrent starts of one data dir
            if self.is_running():
                wait_until_ready(self.bootstrap, timeout)
                return self.bootstrap
            state = self._resolve_state()
            ports = (
                ("port", HOST, state.port),
                ("controller port", HOST, state.controller_port),
                ("SASL port", self.functions_host, state.sasl_port),
            )
            for name, host, port in ports:
                if not port_free(port, host):
                    raise BrokerError(
                        f"{name} {host}:{port} of the broker in {self.data_dir} is already in use by another process"
                    )
            self._write_config(state)
            if not self.is_formatted():
                self._format(java, libs, state)
            cmd = [*self._jvm(java, libs), "kafka.Kafka", str(self.server_properties)]
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
                wait_until_ready(self.bootstrap, timeout, self._check_alive)  # a cold fetch/format is not counted
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

    @staticmethod
    def _wait_exit(pid: int, timeout: float) -> bool:
        # Waits for (and reaps) a child of this process as well as a broker another process started.
        try:
            psutil.Process(pid).wait(timeout)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            return False
        return True

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        pid = self._current_pid()
        if pid is not None:
            self._signal(pid, sig)
            if not self._wait_exit(pid, timeout):
                self._signal(pid, signal.SIGKILL)
                if not self._wait_exit(pid, 10.0):
                    raise BrokerTimeoutError(f"Kafka (pid {pid}) survived SIGKILL")
        self._proc = None
        self.pid_file.unlink(missing_ok=True)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait for a clean (controlled) shutdown; SIGKILL after ``timeout``."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL the broker (no clean shutdown) -- for chaos tests."""
        self._end(signal.SIGKILL, 10.0)

    def restart(self, timeout: float = 60.0) -> str:
        """Clean stop, then start on the same data dir and ports."""
        self.stop()
        return self.start(timeout)

    def __repr__(self) -> str:
        return f"KafkaBroker(data_dir={str(self.data_dir)!r})"
