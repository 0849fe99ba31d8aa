"""One packaged function in AWS's Runtime Interface Emulator, run by ``awslambdaric`` on the runtime's Python.

The emulator is what ``sam local invoke`` runs inside its container: it starts the runtime client in the task
root on the first invocation, logs the init phase as ``INIT REPORT(durationMs: ...)`` (Lambda's ``Init
Duration``) and each invocation as ``REPORT RequestId: ...``. (That emulator's own ``Init Duration`` field in the
REPORT line times only the asynchronous start of the init, a fraction of a millisecond; the INIT REPORT of its
core is the figure to read.) The function's environment is built like Lambda's, in this order:

1. the variables Lambda defines for every function ("Defined runtime environment variables",
   https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime),
   with local stand-ins for the paths and dummy credentials;
2. the function's literal environment from template.yaml;
3. the function's entry of an ``--env-vars`` file (``devstack.stack.env_vars``: the local stack's endpoints).

The search path is the python3.13 runtime's: task root, then the layers' ``python/lib/python3.13/site-packages``
and ``python`` (https://docs.aws.amazon.com/lambda/latest/dg/python-package.html#python-package-searchpath),
then the runtime's own packages. ``/var/task`` and ``/opt`` are read-only in Lambda; this process may write
there (and root ignores file modes), so ``PYTHONDONTWRITEBYTECODE`` keeps Python from caching .pyc files the
real runtime could not write.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirakuru.exceptions import ProcessExitedWithError, TimeoutExpired

from devstack.lifecycle import Lifecycle
from devstack.ports import free_port
from devstack.processes import ListeningChild
from devstack.runtime.package import Build, PackagedFunction

HOST = "127.0.0.1"
REGION = "us-east-1"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
_REPORT = re.compile(r"^REPORT RequestId: (?P<id>\S+)\t(?P<fields>.*)$", re.M)
_INIT_REPORT = re.compile(r"INIT REPORT\(durationMs: (?P<ms>[0-9.]+)\)")


class EmulatorError(RuntimeError):
    """The emulator did not start or did not answer."""


class FunctionError(RuntimeError):
    """The function raised (or failed to initialize); the message carries Lambda's error payload."""


@dataclass(frozen=True)
class Invocation:
    payload: Any
    init_duration_ms: float | None  # only on the first invocation of an execution environment
    duration_ms: float


def lambda_environment(build: Build, function: PackagedFunction, opt: Path) -> dict[str, str]:
    """What Lambda defines for the function (step 1 of the module docstring)."""
    spec = function.spec
    site = f"python/lib/python{build.python.version}/site-packages"
    return {
        "PATH": f"{build.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "_HANDLER": spec.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{build.python.version}",
        "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_seconds),  # the emulator's own setting
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.logical_id}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "$LATEST",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        **DUMMY_CREDENTIALS,
        "LAMBDA_TASK_ROOT": str(function.task_root),
        "LAMBDA_RUNTIME_DIR": str(build.venv),
        "PYTHONPATH": ":".join([str(function.task_root), str(opt / site), str(opt / "python")]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _report(lines: str, request_id: str) -> dict[str, str]:
    """The fields of a request's ``REPORT`` line (``Duration``, ``Billed Duration``, ...), units left out."""
    for match in _REPORT.finditer(lines):
        if match.group("id") == request_id:
            pairs = (item.split(": ", 1) for item in match.group("fields").split("\t") if ": " in item)
            return {name: value.split(" ", 1)[0] for name, value in pairs}
    raise EmulatorError(f"no REPORT line for request {request_id}")


class EmulatedFunction(Lifecycle):
    """``with EmulatedFunction(build, function, env_vars, log_path=...) as fn: fn.invoke(event)``."""

    def __init__(
        self,
        build: Build,
        function: PackagedFunction,
        env_vars: Mapping[str, str],
        *,
        log_path: Path,
        precompiled: bool = True,
    ) -> None:
        self.build = build
        self.function = function
        self.log_path = log_path
        opt = function.opt_dir(precompiled)
        self.environment = {
            **lambda_environment(build, function, opt),
            **function.spec.environment,
            **env_vars,
        }
        self.port = 0
        self._emulator: ListeningChild | None = None
        self._log_start = 0  # where this environment's lines begin in the log
        self._initialized = False

    def start(self, timeout: float = 30.0) -> EmulatedFunction:
        self.port = free_port(HOST)
        api_port = free_port(HOST, exclude=[self.port])
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._initialized = False
        command = [
            str(self.build.rie),
            "--runtime-interface-emulator-address",
            f"{HOST}:{self.port}",
            "--runtime-api-address",
            f"{HOST}:{api_port}",
            str(self.build.venv / "bin" / "python"),
            "-m",
            "awslambdaric",
            self.function.spec.handler,
        ]
        with self.log_path.open("ab") as log:
            # Its own process group: stop() ends the runtime with it.
            self._emulator = ListeningChild(
                command,
                HOST,
                self.port,
                cwd=str(self.function.task_root),
                envvars=self.environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
            try:
                self._emulator.start()
            except ProcessExitedWithError as exc:
                raise EmulatorError(f"the emulator exited with code {exc.exit_code}; see {self.log_path}") from None
            except TimeoutExpired:
                raise EmulatorError(
                    f"the emulator did not listen on {HOST}:{self.port} within {timeout:.0f}s"
                ) from None
        return self

    def invoke(self, event: Any) -> Invocation:
        """POST the event to the emulator's invoke endpoint; the answer and this invocation's REPORT figures."""
        request_id = str(uuid.uuid4())
        request = urllib.request.Request(
            f"http://{HOST}:{self.port}/2015-03-31/functions/function/invocations",
            data=json.dumps(event).encode(),
            headers={"X-Amzn-RequestId": request_id, "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.function.spec.timeout_seconds + 30) as response:  # noqa: S310 - http://127.0.0.1
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise FunctionError(f"emulator answered {exc.code}: {exc.read()[:2000]!r}; see {self.log_path}") from exc
        payload = json.loads(body) if body else None
        if isinstance(payload, dict) and {"errorType", "errorMessage"} <= payload.keys() and len(payload) <= 4:
            raise FunctionError(f"{payload['errorType']}: {payload['errorMessage']} (see {self.log_path})")
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            lines = log.read().decode(errors="replace")
        init = None
        if not self._initialized:
            found = _INIT_REPORT.search(lines)
            if found is None:
                raise EmulatorError(f"no INIT REPORT line in {self.log_path}")
            init, self._initialized = float(found.group("ms")), True
        return Invocation(
            payload=payload, init_duration_ms=init, duration_ms=float(_report(lines, request_id)["Duration"])
        )

    def stop(self) -> None:
        emulator, self._emulator = self._emulator, None
        if emulator is not None:
            emulator.stop()
