"""The runtime suite's pieces: the packaged functions, and the parts of the local stack they talk to.

Built once per session (and cached across sessions by content hash, see ``devstack.runtime.package``): the
Runtime Interface Emulator, the runtime's Python with ``awslambdaric``, the layers from their own Makefiles.
Shared for the whole package: the session's Kafka broker (``kafka_bootstrap``), one moto server, the Slack and
webhook receivers, and the ``--env-vars`` content ``make run`` writes for them.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.receivers import DeliveryReceiver
from devstack.runtime.emulator import EmulatedFunction
from devstack.runtime.package import Build, build
from devstack.runtime.services import Services, aws_services
from devstack.stack import env_vars
from devstack.template_config import load_template


@pytest.fixture(scope="session")
def runtime_build() -> Build:
    """Every function of template.yaml packaged, with the emulator and the runtime (built on first use)."""
    lines: list[str] = []
    built = build(progress=lines.append)
    if built.python.warning:
        warnings.warn(built.python.warning, stacklevel=1)
    return built


@pytest.fixture(scope="package")
def services() -> Iterator[Services]:
    """One moto server (in this process: the tests read its backends) and the Slack and webhook receivers."""
    with aws_services() as running:
        yield running


@pytest.fixture(scope="package")
def moto_endpoint(services: Services) -> str:
    return services.aws_endpoint


@pytest.fixture(scope="package")
def receivers(services: Services) -> dict[str, DeliveryReceiver]:
    return {"slack": services.slack, "webhook": services.webhook}


@pytest.fixture(scope="package")
def env_vars_file(kafka_bootstrap: str, moto_endpoint: str, tmp_path_factory) -> Path:
    """The ``--env-vars`` file ``make run`` writes, for this package's broker and moto server."""
    path = tmp_path_factory.mktemp("runtime") / "env-vars.json"
    content = env_vars(load_template().functions, bootstrap=kafka_bootstrap, aws_endpoint=moto_endpoint)
    path.write_text(json.dumps(content, indent=2))
    return path


@pytest.fixture
def start_function(runtime_build: Build, env_vars_file: Path, tmp_path: Path) -> Iterator[Any]:
    """``start_function("IngestFunction")``: the function in the emulator with the env-vars file's entry."""
    started: list[EmulatedFunction] = []
    overrides = json.loads(env_vars_file.read_text())

    def start(logical_id: str, *, precompiled: bool = True) -> EmulatedFunction:
        function = EmulatedFunction(
            runtime_build,
            runtime_build.function(logical_id),
            overrides[logical_id],
            log_path=tmp_path / f"{logical_id}.log",
            precompiled=precompiled,
        ).start()
        started.append(function)
        return function

    yield start
    for function in started:
        function.stop()
