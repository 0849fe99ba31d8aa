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

import boto3
import pytest
from moto.server import ThreadedMotoServer

from devstack import aws_resources
from devstack.receivers import DeliveryReceiver
from devstack.runtime.emulator import REGION, EmulatedFunction
from devstack.runtime.package import Build, build
from devstack.stack import env_vars, free_port
from devstack.template_config import load_template

HOST = "127.0.0.1"
SIGNING_KEY = "runtime-signing-key"


@pytest.fixture(scope="session")
def runtime_build() -> Build:
    """Every function of template.yaml packaged, with the emulator and the runtime (built on first use)."""
    lines: list[str] = []
    built = build(progress=lines.append)
    if built.python.warning:
        warnings.warn(built.python.warning, stacklevel=1)
    return built


class _EndpointSession:
    def __init__(self, endpoint: str) -> None:
        self._session = boto3.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        self.endpoint = endpoint

    def client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self.endpoint)  # type: ignore[call-overload]


@pytest.fixture(scope="package")
def moto_endpoint() -> Iterator[str]:
    """A moto server in this process: the functions call it over HTTP, the tests read its backends."""
    port = free_port()
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    try:
        yield f"http://{HOST}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="package")
def receivers(moto_endpoint: str) -> Iterator[dict[str, DeliveryReceiver]]:
    """Slack and webhook receivers, and the project's AWS resources in moto with secrets pointing at them."""
    with DeliveryReceiver() as slack, DeliveryReceiver(signing_key=SIGNING_KEY) as webhook:
        aws_resources.create_all(
            _EndpointSession(moto_endpoint),
            aws_resources.Endpoints(
                slack_webhook_url=slack.url("/slack"),
                webhook_url=webhook.url("/webhook"),
                webhook_signing_key=SIGNING_KEY,
            ),
        )
        yield {"slack": slack, "webhook": webhook}


@pytest.fixture(scope="package")
def env_vars_file(
    kafka_bootstrap: str, moto_endpoint: str, receivers: dict[str, DeliveryReceiver], tmp_path_factory
) -> Path:
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
