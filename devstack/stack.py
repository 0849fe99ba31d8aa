"""The whole product on one machine: Kafka, AWS APIs (moto), Slack/webhook receivers and every function.

What runs (``LocalStack.start``), each announced by one progress line:

1. Kafka: the local KRaft broker (data in ``<data_dir>/kafka``, port 9092 unless taken; a restart reuses the data
   dir and its port), or the cluster named by ``KAFKA_BOOTSTRAP_SERVERS``. Topics from ``devstack.topics``.
2. AWS: a moto server on 127.0.0.1 (DynamoDB, SES, SNS, Secrets Manager) with the project's resources.
3. Receivers: a Slack incoming webhook and a signature-checking webhook endpoint (``devstack.receivers``), and a
   local SES v2 (``devstack.providers``) that keeps every email as received and publishes SES's events to the
   feedback function (the SES mailbox simulator's addresses bounce or complain).
4. Functions from template.yaml, each in its own process (``devstack.function_worker``): the ingest behind a local
   HTTP API, the fanout and one sender per channel behind local Kafka event-source mappings, the feedback function
   behind Lambda's Invoke API. A function whose process dies gets a new one, as Lambda starts a new execution
   environment.
5. When the config asks for it (``StackConfig.viewer``: ``python -m devstack up`` does), the delivery viewer (the
   optional ``viewer`` package, port 3004 unless taken): a page of every notification, its status and what each
   provider received, and the dead letters with a Replay button. Local only, never deployed. The viewer imports
   the stack, never the reverse: the stack loads it by name, and only when asked.

Each function's environment is what template.yaml gives it literally, then the local wiring
(``aws_resources.function_environment``), then ``AWS_ENDPOINT_URL`` (moto) with dummy credentials. Function logs
(JSON, as CloudWatch would hold them) go to ``<data_dir>/logs/<FunctionLogicalId>.log``; ``<data_dir>/stack.json``
says where everything listens while the stack runs, and ``<data_dir>/env-vars.json`` holds the same wiring in
the format of ``sam local invoke --env-vars`` (:func:`env_vars`).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, Protocol

from devstack import aws_resources, call_counts, dynamodb_local, permissions, standins
from devstack.broker import KafkaBroker, ensure_topics, is_fetched, wait_until_ready
from devstack.custom_resources import CustomResource
from devstack.lifecycle import Lifecycle
from devstack.ports import free_port, port_free, preferred_port
from devstack.processes import Child
from devstack.providers import SesStandIn, SnsDeliveryLogHook, lambda_invoker
from devstack.receivers import DeliveryReceiver
from devstack.template_config import DEFAULT_TEMPLATE, FunctionSpec, Template, load_template
from devstack.topics import TOPIC_CONFIGS, TOPICS
from notifications.registry import Channel

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT / ".devstack"
HOST = "127.0.0.1"
REGION = "us-east-1"
DYNAMODB_ENDPOINT_ENV = "AWS_ENDPOINT_URL_DYNAMODB"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Lambda runs one request per execution environment and starts more as requests overlap (Lambda developer guide,
# "Understanding Lambda function scaling": https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html);
# locally a fixed pool behind the API port stands for that. For Kafka triggers Lambda adds pollers on the
# partitions' offset lag (Lambda developer guide, "Apache Kafka event poller scaling modes in Lambda":
# https://docs.aws.amazon.com/lambda/latest/dg/kafka-scaling-modes.html); locally one environment per partition.
INGEST_ENVIRONMENTS = 4
# Variables of the orchestrating process that must not leak into a function's environment.
_NOT_INHERITED = ("AWS_", "KAFKA_", "POWERTOOLS_", "TOPIC_", "_X_AMZN", "DEVSTACK_")


class StackError(RuntimeError):
    """Something of the local stack could not start."""


@dataclass(frozen=True)
class StackConfig:
    data_dir: Path = DEFAULT_DATA_DIR
    template: Path = DEFAULT_TEMPLATE
    api_port: int = 3000  # exact (0: any free port)
    broker_port: int = 9092  # preferred; another free port when taken
    moto_port: int = 5000  # preferred
    dynamodb_port: int = 8000  # preferred
    slack_port: int = 3001  # preferred
    webhook_port: int = 3002  # preferred
    ses_port: int = 3003  # preferred
    viewer: bool = False  # the delivery viewer (package ``viewer``), an optional part
    viewer_port: int = 3004  # preferred (the delivery viewer)
    bootstrap: str | None = None  # an existing Kafka cluster instead of the local broker
    retry_backoff_seconds: float = 0.5  # first back-off of a failing partition (doubles, capped)
    retry_backoff_cap_seconds: float = 10.0
    # Execution environments (processes) per function: the ingest's share the API port (Linux), those of a
    # Kafka-triggered function share its consumer group, at most one per partition. None: as Lambda scales out,
    # INGEST_ENVIRONMENTS for the HTTP API and one per partition for Kafka triggers.
    concurrency: int | None = None
    ready_timeout_seconds: float = 120.0
    # Where every function process writes its AWS call counts (``devstack.call_counts``; benchmarks only).
    call_counts_dir: Path | None = None
    # Extra environment per function (logical id), applied last: e.g. a channel's rate for a test.
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)
    # Each function only what its role in the template allows, on Kafka (ACLs) and AWS (devstack.permissions).
    # False: every function may do anything (the benchmark's baseline).
    enforce_permissions: bool = True
    # Where the stack keeps, when it stops, what its functions were allowed and denied (devstack.permissions.archive).
    access_archive: Path | None = None
    # Where what the functions call listens (Kafka's SASL listener, moto, DynamoDB, SES, SNS, the receivers):
    # 127.0.0.1, or the gateway of a Docker bridge so that the containers of `sam local invoke` reach it
    # (docs/deploy.md, "Trying functions"). The API, the viewer and the stack's own Kafka listener stay on 127.0.0.1.
    functions_host: str = HOST
    # False: only what the functions call (Kafka, AWS, the providers), for functions run elsewhere (sam local invoke).
    functions: bool = True


def free_ports_config(data_dir: Path, **settings: Any) -> StackConfig:
    """A stack on free ports only (none of the preferred ones) in ``data_dir``: for tests and benchmarks."""
    names = ("api_port", "broker_port", "moto_port", "dynamodb_port", "slack_port", "webhook_port", "ses_port")
    ports = dict.fromkeys((*names, "viewer_port"), 0)
    return StackConfig(data_dir=data_dir, **{**ports, **settings})


@dataclass
class StackInfo:
    """Where everything listens; written to ``<data_dir>/stack.json`` while the stack runs."""

    api_url: str
    bootstrap: str
    aws_endpoint: str
    slack_url: str  # the local shop's Slack destination (each shop has its own path: aws_resources.Endpoints)
    webhook_url: str  # the local shop's webhook destination
    logs_dir: str
    channels: list[str]
    functions: dict[str, int] = field(default_factory=dict)  # logical id -> pid
    dynamodb_endpoint: str = ""  # the local DynamoDB (dynalite); every other AWS API is at aws_endpoint
    # The local SES: every email as received at <ses_url>/_local/ses/messages (devstack.providers).
    ses_url: str = ""
    viewer_url: str = ""
    # The demo devices' SNS platform endpoints (customer.push_endpoint), in moto.
    push_endpoints: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, data_dir: Path = DEFAULT_DATA_DIR) -> StackInfo | None:
        try:
            return cls(**json.loads((data_dir / "stack.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None


def channel_available(channel: str) -> bool:
    """True when the shared package has a sender module for the channel."""
    return importlib.util.find_spec(f"notifications.channels.{channel}") is not None


def function_environment(
    spec: FunctionSpec,
    *,
    bootstrap: str,
    aws_endpoint: str,
    dynamodb_endpoint: str | None = None,
    base: Mapping[str, str],
    backoff: float,
    backoff_cap: float = 10.0,
) -> dict[str, str]:
    """The environment a function runs with locally (see the module docstring for the order)."""
    env = {k: v for k, v in base.items() if not k.startswith(_NOT_INHERITED)}
    env.update(spec.environment)
    env.update(aws_resources.function_environment(bootstrap))
    env.update(DUMMY_CREDENTIALS)
    env.update(
        {
            "AWS_ENDPOINT_URL": aws_endpoint,
            **({DYNAMODB_ENDPOINT_ENV: dynamodb_endpoint} if dynamodb_endpoint else {}),
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "PYTHONUNBUFFERED": "1",
            # botocore signs with the AWS CRT when awscrt can be imported, and the dev environment has it (aws-sam-cli
            # requires boto3[crt]); Lambda's Python runtimes ship boto3 without it (a request for images with the CRT:
            # https://github.com/aws/aws-lambda-base-images/issues/147), so there botocore signs in Python. Locally the
            # same: botocore's own switch (botocore/compat.py, BOTO_DISABLE_CRT).
            "BOTO_DISABLE_CRT": "true",
            "DEVSTACK_RETRY_BACKOFF_SECONDS": str(backoff),
            "DEVSTACK_RETRY_BACKOFF_CAP_SECONDS": str(backoff_cap),
        }
    )
    return env


def env_vars(
    function_ids: Iterable[str],
    *,
    bootstrap: str,
    aws_endpoint: str,
    dynamodb_endpoint: str | None = None,
    per_function: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, dict[str, str]]:
    """The local wiring per function in SAM's ``--env-vars`` format: ``{"FunctionLogicalId": {"VAR": "value"}}``;
    ``per_function`` adds to a function's entry (its Kafka credentials, the local SES and SNS).

    ``sam local invoke`` applies only the variables the template declares for a function (SAM developer guide,
    "Environment variable file": https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/
    serverless-sam-cli-using-invoke.html#serverless-sam-cli-using-invoke-environment-file), so every name a
    function needs locally is declared in template.yaml (an empty endpoint in Globals, which botocore ignores).
    """
    wiring = {**aws_resources.function_environment(bootstrap), "AWS_ENDPOINT_URL": aws_endpoint}
    if dynamodb_endpoint:
        wiring[DYNAMODB_ENDPOINT_ENV] = dynamodb_endpoint
    return {fid: {**wiring, **(per_function or {}).get(fid, {})} for fid in function_ids}


class EndpointSession:
    """The ``client(service)`` of a boto3 session, aimed at the moto server (for ``aws_resources.create_all``),
    and DynamoDB at ``dynamodb_endpoint`` when given."""

    def __init__(self, endpoint: str, dynamodb_endpoint: str | None = None) -> None:
        import boto3  # noqa: PLC0415

        self._session = boto3.Session(
            region_name=REGION,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        self._endpoint = endpoint
        self._dynamodb_endpoint = dynamodb_endpoint or endpoint

    def client(self, service: str) -> Any:
        endpoint = self._dynamodb_endpoint if service == "dynamodb" else self._endpoint
        return self._session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]


def _wait_ready_line(child: Child, fd: int, timeout: float, what: str) -> dict[str, Any]:
    """Read the one JSON line a child writes on its ready pipe."""
    proc = child.process
    assert proc is not None
    deadline = time.monotonic() + timeout
    data = b""
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StackError(f"{what} not ready after {timeout:.0f}s")
            readable, _, _ = select.select([pipe], [], [], min(remaining, 0.5))
            if readable:
                chunk = pipe.read(4096)
                if not chunk:
                    break
                data += chunk
            elif proc.poll() is not None:
                break
    if b"\n" not in data:
        raise StackError(f"{what} exited with code {proc.wait()} before it was ready")
    info: dict[str, Any] = json.loads(data.split(b"\n", 1)[0])
    return info


def _spawn(args: Sequence[str], *, env: Mapping[str, str], log: IO[bytes], stop_timeout: float) -> tuple[Child, int]:
    """``python <args> --ready-fd N`` started (not awaited) with the read end of its ready pipe."""
    read_fd, write_fd = os.pipe()
    child = Child(
        [sys.executable, *args, "--ready-fd", str(write_fd)],
        cwd=str(REPO_ROOT),
        envvars=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        timeout=stop_timeout,
        popen_kwargs={"pass_fds": (write_fd,)},
    )
    try:
        child.start()
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return child, read_fd


@dataclass
class _Worker:
    spec: FunctionSpec
    args: list[str]
    env: dict[str, str]
    log_path: Path
    child: Child | None = None
    ready_fd: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0

    @property
    def proc(self) -> subprocess.Popen[str] | None:
        return None if self.child is None else self.child.process

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self.child, self.ready_fd = _spawn(self.args, env=self.env, log=log, stop_timeout=20)

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        assert self.child is not None
        assert self.ready_fd is not None
        fd, self.ready_fd = self.ready_fd, None
        try:
            self.info = _wait_ready_line(self.child, fd, timeout, self.spec.logical_id)
        except StackError as exc:
            raise StackError(f"{exc}; see {self.log_path}") from None
        return self.info


class Part(Protocol):
    """An optional part the stack started (the delivery viewer): where it serves, and how it stops."""

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...


class LocalStack(Lifecycle):
    """Start with :meth:`start`, stop with :meth:`stop` (also as a context manager)."""

    def __init__(self, config: StackConfig = StackConfig(), progress: Callable[[str], None] = print) -> None:
        self.config = config
        self.progress = progress
        self.data_dir = config.data_dir.resolve()
        self.logs_dir = self.data_dir / "logs"
        self.broker: KafkaBroker | None = None
        self.slack: DeliveryReceiver | None = None
        self.webhook: DeliveryReceiver | None = None
        self.viewer: Part | None = None
        self.ses: SesStandIn | None = None
        self.sns: SnsDeliveryLogHook | None = None
        self.standins: dict[Channel, standins.Prepared] = {}
        self.info: StackInfo | None = None
        self.workers: dict[str, _Worker] = {}
        self._own_broker = False
        self._moto: Child | None = None
        self._dynamodb: Child | None = None
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.permissions: permissions.Permissions | None = None

    # -- start ---------------------------------------------------------------

    def start(self) -> StackInfo:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> StackInfo:
        if self.config.api_port and not port_free(self.config.api_port):
            raise StackError(f"port {self.config.api_port} is taken (choose another with --port)")
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        template = load_template(self.config.template)
        bootstrap = self._start_kafka()
        ensure_topics(bootstrap, TOPICS, configs=TOPIC_CONFIGS)
        self.progress(f"topics: {', '.join(f'{name} ({n})' for name, n in TOPICS.items())}")
        aws_endpoint = self._start_moto()
        dynamodb_endpoint = self._start_dynamodb()
        endpoints = self._start_receivers()
        host = self.config.functions_host
        self.ses = SesStandIn(
            preferred_port(self.config.ses_port, host), configuration_set=aws_resources.CONFIGURATION_SET, host=host
        )
        self.ses.start()
        self.progress(f"ses: local SES v2 at {self.ses.url} (emails as received: {self.ses.url}/_local/ses/messages)")
        self.sns = SnsDeliveryLogHook(aws_endpoint, host=host).start()
        self.progress(f"sns: {self.sns.url} -> moto, each SMS then reported as SNS's delivery status log would")
        aws_resources.create_all(EndpointSession(aws_endpoint, dynamodb_endpoint), endpoints)
        assert self.slack is not None  # started with the receivers
        local = standins.Local(EndpointSession(aws_endpoint, dynamodb_endpoint), self.slack.url)
        self.standins = standins.prepare_all(local)
        push_endpoints = aws_resources.create_push_endpoints(
            EndpointSession(aws_endpoint, dynamodb_endpoint).client("sns"), aws_resources.seed_moto_server(aws_endpoint)
        )
        self.progress(
            f"aws: tables {aws_resources.STATUS_TABLE}, {aws_resources.IDEMPOTENCY_TABLE}, "
            f"{aws_resources.QUOTA_TABLE}; SES identity {aws_resources.SENDER_ADDRESS}; "
            f"destinations of {', '.join(aws_resources.LOCAL_SHOPS)} under {aws_resources.DESTINATION_PREFIX}/; "
            f"{len(push_endpoints)} push endpoints of {aws_resources.PUSH_APPLICATION}"
        )
        if self.config.enforce_permissions:
            self._prepare_permissions(template.path, aws_endpoint, dynamodb_endpoint)
            self._create_custom_resources(template, bootstrap, aws_endpoint, dynamodb_endpoint)
        env_vars_file = self.data_dir / "env-vars.json"
        wiring = env_vars(
            template.functions,
            bootstrap=bootstrap,
            aws_endpoint=aws_endpoint,
            dynamodb_endpoint=dynamodb_endpoint,
            per_function={fid: self._invoke_wiring(spec) for fid, spec in template.functions.items()},
        )
        env_vars_file.write_text(json.dumps(wiring, indent=2) + "\n")
        self.progress(f"env-vars: {env_vars_file} (sam local invoke --env-vars)")
        api_url, channels = "", []
        if self.config.functions:
            channels = self._start_functions(template.functions.values(), bootstrap, aws_endpoint, dynamodb_endpoint)
            self._wire_feedback()
            ingest = next((w for w in self.workers.values() if "port" in w.info), None)
            if ingest is None:
                raise StackError("no function with an HTTP API event in the template")
            api_url = f"http://{HOST}:{ingest.info['port']}"
        self.info = StackInfo(
            api_url=api_url,
            bootstrap=bootstrap,
            aws_endpoint=aws_endpoint,
            slack_url=endpoints.slack_url(),
            webhook_url=endpoints.webhook_url(),
            logs_dir=str(self.logs_dir),
            channels=channels,
            functions={fid: w.proc.pid for fid, w in self.workers.items() if w.proc is not None},
            dynamodb_endpoint=dynamodb_endpoint,
            ses_url=self.ses.url,
            push_endpoints=push_endpoints,
        )
        if self.config.viewer:
            self.start_viewer()
        self._write_info()
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._supervisor.start()
        if self.config.functions:
            self.progress(f"ready: POST {self.info.api_url}/v1/notifications (channels: {', '.join(channels)})")
        else:
            self.progress("ready: no function runs here; invoke them with sam local invoke (see env-vars)")
        return self.info

    def _start_kafka(self) -> str:
        if self.config.bootstrap:
            self.progress(f"kafka: using {self.config.bootstrap} (KAFKA_BOOTSTRAP_SERVERS)")
            wait_until_ready(self.config.bootstrap, 60)
            return self.config.bootstrap
        kafka_dir = self.data_dir / "kafka"
        broker = KafkaBroker(kafka_dir, functions_host=self.config.functions_host)
        if broker.is_running():
            self.broker = broker
            bootstrap = broker.start()
            self.progress(f"kafka: broker already running at {bootstrap} (pid {broker.pid}); leaving it running")
            return bootstrap
        if broker.state_file.exists():
            port = broker.port if port_free(broker.port) else free_port()
            action = "restarting broker (data kept)"
        else:
            port = preferred_port(self.config.broker_port)
            action = "starting a new broker"
        if not is_fetched():
            self.progress("kafka: fetching Apache Kafka from Maven Central (first run only) ...")
        self.progress(f"kafka: {action} in {kafka_dir} ...")
        self.broker = KafkaBroker(kafka_dir, port=port, functions_host=self.config.functions_host)
        self._own_broker = True
        bootstrap = self.broker.start(timeout=self.config.ready_timeout_seconds)
        self.progress(f"kafka: ready at {bootstrap} (pid {self.broker.pid}, log {self.broker.log_file})")
        return bootstrap

    def _prepare_permissions(self, template: Path, aws_endpoint: str, dynamodb_endpoint: str) -> None:
        """Each function's role from the template; Kafka ACLs and credentials per function on the local broker."""
        if self.broker is None:
            self.progress(
                "permissions: NOT enforced: an existing cluster (KAFKA_BOOTSTRAP_SERVERS) has no ACLs of this stack's; "
                "every function may do anything"
            )
            return
        session = EndpointSession(aws_endpoint, dynamodb_endpoint)
        secrets = session.client("secretsmanager")
        # Every secret made so far (the channels' and their stand-ins'): a call names one by name, IAM by its ARN
        secret_arns = {
            secret["Name"]: secret["ARN"]
            for page in secrets.get_paginator("list_secrets").paginate()
            for secret in page["SecretList"]
        }
        parameters = permissions.local_parameters(
            bootstrap=self.broker.sasl_bootstrap,
            sender_address=aws_resources.SENDER_ADDRESS,
            destination_prefix=aws_resources.DESTINATION_PREFIX,
            stand_ins=standins.parameters(self.standins),
        )
        physical = permissions.local_physical(aws_resources.TABLES, aws_resources.CONFIGURATION_SET, template)
        self.permissions = permissions.Permissions(self.data_dir / "access", parameters, physical)
        self.permissions.prepare(
            self.permissions.deploy(template),
            secretsmanager=secrets,
            admin_bootstrap=self.broker.bootstrap,
            sasl_bootstrap=self.broker.sasl_bootstrap,
            secret_arns=secret_arns,
            ses_identities=[aws_resources.SENDER_ADDRESS],
        )
        self.progress(
            f"permissions: each function as its role in {template.name} allows it: Kafka ACLs on "
            f"{self.broker.sasl_bootstrap} (SASL/SCRAM per function), AWS calls checked against the role; "
            f"report: python -m devstack.permissions report --data-dir {self.data_dir}"
        )

    def _create_custom_resources(self, template: Template, bootstrap: str, aws_endpoint: str, dynamodb: str) -> None:
        """As CloudFormation does at deploy: each custom resource is created by invoking its function, with that
        function's permissions (``devstack.custom_resources``). The topics exist already (the stack made them with
        its local partition counts); the topics function finds them, keeps them and sets their retention."""
        from devstack.custom_resources import Responses, custom_resources  # noqa: PLC0415

        if self.permissions is None or self.permissions.resolver is None:
            return
        deployed = custom_resources(self.permissions.document, self.permissions.resolver)
        resources = [self._local_properties(r) for r in deployed]
        responses = Responses().start()
        try:
            for function in sorted({r.function for r in resources}):
                events = [r.create_event(responses.url) for r in resources if r.function == function]
                events_file = self.permissions.directory / f"deploy-{function}.json"
                events_file.write_text(json.dumps(events, indent=1))
                spec = template.function(function)
                env = self._function_env(spec, bootstrap, aws_endpoint, dynamodb)
                args = ["-m", "devstack.function_worker", function, "--template", str(template.path)]
                with (self.logs_dir / f"{function}.log").open("ab") as log:
                    subprocess.run(
                        [sys.executable, *args, "--invoke-events", str(events_file)],
                        env=env,
                        cwd=REPO_ROOT,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        timeout=spec.timeout_seconds + 30,
                        check=False,
                    )
        finally:
            responses.stop()
        answers = {r.logical_id: responses.answers.get(r.logical_id, {}) for r in resources}
        failed = {lid: a.get("Reason", "no answer") for lid, a in answers.items() if a.get("Status") != "SUCCESS"}
        if failed:
            raise StackError(f"custom resources failed: {failed}; see {self.logs_dir}")
        self.progress(f"deploy: custom resources {', '.join(answers)} created (as CloudFormation invokes them)")

    def _local_properties(self, resource: CustomResource) -> CustomResource:
        """A custom resource's properties for this one-broker cluster: SASL/SCRAM as the function's own principal,
        one replica, and no partitions added to the local topics."""
        if resource.resource_type != "Custom::KafkaTopics" or self.permissions is None:
            return resource
        topics = resource.properties.get("Topics") or []
        local = {
            "SecurityProtocol": "SASL_PLAINTEXT",
            "SaslMechanism": "SCRAM-SHA-512",
            "SaslSecretArn": self.permissions.kafka_secrets[resource.function],
            "ReplicationFactor": "1",
            "MinInsyncReplicas": "1",
            "Partitions": str(min((TOPICS.get(t, 1) for t in topics), default=1)),
        }
        return dataclasses.replace(resource, properties={**resource.properties, **local})

    def _start_moto(self) -> str:
        host = self.config.functions_host
        port = preferred_port(self.config.moto_port, host)
        with (self.logs_dir / "moto.log").open("ab") as log:
            args = ["-m", "devstack.stack", "moto-server", "--host", host, "--port", str(port)]
            self._moto, fd = _spawn(args, env=os.environ, log=log, stop_timeout=10)
        _wait_ready_line(self._moto, fd, 60, "moto server")
        endpoint = f"http://{host}:{port}"
        self.progress(f"aws: moto server at {endpoint} (SES, SNS, Secrets Manager)")
        return endpoint

    def _start_dynamodb(self) -> str:
        """dynalite on LevelDB in ``<data_dir>/dynamodb``: tables and items survive restarts of the stack."""
        if not dynamodb_local.is_installed():
            self.progress("aws: installing the local DynamoDB (dynalite, npm; first run only) ...")
        try:
            dynamodb_local.install()
        except dynamodb_local.DynaliteError as exc:
            raise StackError(str(exc)) from None
        data = self.data_dir / "dynamodb"
        data.mkdir(parents=True, exist_ok=True)
        host = self.config.functions_host
        port = preferred_port(self.config.dynamodb_port, host)
        with (self.logs_dir / "dynamodb.log").open("ab") as log:
            self._dynamodb = Child(
                dynamodb_local.command(port, data, host),
                cwd=str(REPO_ROOT),
                envvars=dict(os.environ),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                timeout=10,
            ).start()
        stdout = self._dynamodb.output()
        assert stdout is not None
        info = _wait_ready_line(self._dynamodb, os.dup(stdout.fileno()), 60, "local DynamoDB")
        stdout.close()
        endpoint = f"http://{host}:{info['port']}"
        self.progress(f"aws: DynamoDB at {endpoint} (dynalite, data in {data})")
        return endpoint

    def _start_receivers(self) -> aws_resources.Endpoints:
        with (self.logs_dir / "receivers.log").open("a") as log:
            log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} receivers started\n")
        host = self.config.functions_host
        self.slack = DeliveryReceiver(
            preferred_port(self.config.slack_port, host), on_delivery=self._log_delivery, host=host
        ).start()
        self.webhook = DeliveryReceiver(
            preferred_port(self.config.webhook_port, host),
            # Each shop's path checks the signature with that shop's key only.
            path_keys={f"/webhook/{shop}": [key] for shop, key in aws_resources.LOCAL_SHOPS.items()},
            on_delivery=self._log_delivery,
            host=host,
        ).start()
        endpoints = aws_resources.Endpoints(
            slack_base_url=self.slack.url("/slack"), webhook_base_url=self.webhook.url("/webhook")
        )
        self.progress(
            f"receivers: Slack {endpoints.slack_base_url}/<shop>, webhook {endpoints.webhook_base_url}/<shop> "
            f"(shops {', '.join(aws_resources.LOCAL_SHOPS)})"
        )
        return endpoints

    def start_viewer(self) -> str:
        """Start the delivery viewer on this stack: at start when ``StackConfig.viewer`` asks for it, or later on the
        running stack (for the tests that look at it). The ``viewer`` package imports the stack; the stack loads it
        by name, only here. Answers its address, also in ``info.viewer_url``."""
        assert self.info is not None, "the stack runs"
        if self.viewer is None:
            self.viewer = importlib.import_module("viewer").start(self)
            self.progress(f"viewer: {self.viewer.url} (notifications, what each provider received, dead letters)")
            self.info.viewer_url = self.viewer.url
            self._write_info()
        return self.info.viewer_url

    def _write_info(self) -> None:
        """``stack.json``: where everything listens (``StackInfo.read``), the viewer's address once it runs."""
        assert self.info is not None
        (self.data_dir / "stack.json").write_text(json.dumps(asdict(self.info), indent=2) + "\n")

    def _log_delivery(self, delivery: Any) -> None:
        with (self.logs_dir / "receivers.log").open("a") as log:
            log.write(
                json.dumps(
                    {"time": time.time(), "path": delivery.path, "status": delivery.status, "bytes": len(delivery.body)}
                )
                + "\n"
            )

    def _function_env(self, spec: Any, bootstrap: str, aws_endpoint: str, dynamodb_endpoint: str) -> dict[str, str]:
        env = function_environment(
            spec,
            bootstrap=bootstrap,
            aws_endpoint=aws_endpoint,
            dynamodb_endpoint=dynamodb_endpoint,
            base=os.environ,
            backoff=self.config.retry_backoff_seconds,
            backoff_cap=self.config.retry_backoff_cap_seconds,
        )
        env.update(self._invoke_wiring(spec))
        if self.permissions is not None:  # the guard on its AWS calls
            env[permissions.ENV] = str(self.permissions.directory)
        if self.config.call_counts_dir is not None:
            env[call_counts.ENV] = str(self.config.call_counts_dir)
        env.update(self.config.overrides.get(spec.logical_id, {}))
        return env

    def _invoke_wiring(self, spec: FunctionSpec) -> dict[str, str]:
        """What a function run outside the stack (``sam local invoke``) needs besides the endpoints: its own Kafka
        credentials, the local SES and SNS, its channel's stand-in. AWS calls are not checked against its role there."""
        wiring = {}
        if self.permissions is not None:
            wiring.update(self.permissions.function_environment(spec.logical_id))
        if self.ses is not None:  # botocore's service-specific endpoint: SES v2 calls reach the local SES
            wiring["AWS_ENDPOINT_URL_SESV2"] = self.ses.url
        if self.sns is not None:
            wiring["AWS_ENDPOINT_URL_SNS"] = self.sns.url
        if (channel := spec.environment.get("CHANNEL")) and (prepared := self.standins.get(Channel(channel))):
            wiring.update(prepared.environment)
        return wiring

    def _start_functions(self, specs: Any, bootstrap: str, aws_endpoint: str, dynamodb_endpoint: str) -> list[str]:
        channels: list[str] = []
        concurrency = self.config.concurrency
        ingest_environments = INGEST_ENVIRONMENTS if concurrency is None else max(1, concurrency)
        api_port = self.config.api_port
        if ingest_environments > 1 and not api_port:
            api_port = free_port()  # every ingest environment binds the same port
        for spec in specs:
            args = ["-m", "devstack.function_worker", spec.logical_id, "--template", str(self.config.template)]
            channel = spec.environment.get("CHANNEL")
            if spec.kafka_triggers:
                if channel and not channel_available(channel):
                    self.progress(f"functions: {spec.logical_id} skipped (no notifications.channels.{channel} module)")
                    continue
                topics = [t for trigger in spec.kafka_triggers for t in trigger.topics]
                what = f"{', '.join(topics)} -> {spec.logical_id}"
                # More environments than partitions would sit idle in the consumer group.
                partitions = max(TOPICS.get(t, 1) for t in topics)
                environments = partitions if concurrency is None else min(max(1, concurrency), partitions)
                if channel:
                    channels.append(channel)
            elif spec.async_events:
                what = f"{', '.join(spec.async_events)} -> {spec.logical_id}"
                environments = 1  # one queue of asynchronous invocations
            elif spec.http_routes:
                args += ["--http-port", str(api_port)] + (["--reuse-port"] if ingest_environments > 1 else [])
                what = f"HTTP API -> {spec.logical_id}"
                environments = ingest_environments
            else:
                self.progress(f"functions: {spec.logical_id} not started (no Kafka trigger or HTTP API event)")
                continue
            env = self._function_env(spec, bootstrap, aws_endpoint, dynamodb_endpoint)
            for number in range(1, environments + 1):
                name = spec.logical_id if number == 1 else f"{spec.logical_id}-{number}"
                worker = _Worker(spec, args, env, self.logs_dir / f"{name}.log")
                worker.info = {"what": what}
                worker.spawn()
                self.workers[name] = worker
        for name, worker in self.workers.items():  # started in parallel, awaited in order
            what = worker.info["what"]
            info = worker.wait_ready(self.config.ready_timeout_seconds)
            where = f" at http://{HOST}:{info['port']}" if "port" in info else ""
            where = f" at {info['invoke_url']}" if "invoke_url" in info else where
            assert worker.proc is not None
            label = f" [{name}]" if name != worker.spec.logical_id else ""
            self.progress(f"functions: {what}{where}{label} (pid {worker.proc.pid}, log {worker.log_path})")
        return channels

    # -- run -----------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stopping.wait(0.5):
            for worker in list(self.workers.values()):
                if self._stopping.is_set() or worker.proc is None or (code := worker.proc.poll()) is None:
                    continue
                worker.restarts += 1
                self.progress(
                    f"functions: {worker.log_path.stem} exited (code {code}); starting a new execution environment"
                )
                try:
                    worker.spawn()
                    worker.wait_ready(self.config.ready_timeout_seconds)
                except StackError as exc:
                    self.progress(f"functions: {exc}")
                    continue
                if self.info is not None and worker.proc is not None:
                    self.info.functions[worker.log_path.stem] = worker.proc.pid
                self._wire_feedback()

    def _wire_feedback(self) -> None:
        """SES events go to the function with an EventBridge rule, SMS delivery logs to the one with a CloudWatch Logs
        subscription, through its Invoke API (as EventBridge and CloudWatch Logs do)."""
        for worker in self.workers.values():
            if "invoke_url" not in worker.info:
                continue
            kinds = {event.rpartition(":")[2] for event in worker.spec.async_events}
            if self.ses is not None and "EventBridgeRule" in kinds:
                self.ses.deliver_events_to(lambda_invoker(worker.info["invoke_url"]))
            if self.sns is not None and "CloudWatchLogs" in kinds:
                self.sns.deliver_logs_to(lambda_invoker(worker.info["invoke_url"]))

    def processes(self) -> dict[str, int]:
        """Process ids of what runs: ``moto``, ``kafka`` (when started here) and every function environment."""
        found = {name: w.proc.pid for name, w in self.workers.items() if w.proc is not None}
        for name, child in (("moto", self._moto), ("dynamodb", self._dynamodb)):
            if child is not None and child.process is not None:
                found[name] = child.process.pid
        pid = self.broker.pid if self.broker is not None else None
        if pid is not None:
            found["kafka"] = pid
        return found

    def kill_function(self, name: str) -> int:
        """SIGKILL a function's process (chaos; ``<LogicalId>`` or ``<LogicalId>-<n>`` for the n-th environment);
        the supervisor starts a new one. Answers the killed pid."""
        proc = self.workers[name].proc
        assert proc is not None
        proc.kill()
        proc.wait(10)
        return proc.pid

    # -- stop ----------------------------------------------------------------

    def stop(self) -> None:
        """Functions first (consumers leave their groups), then receivers, moto, and Kafka with SIGTERM."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=30)
            self._supervisor = None
        if self.workers:
            self.progress(f"stopping: functions ({', '.join(self.workers)})")
            for worker in self.workers.values():
                if worker.ready_fd is not None:
                    os.close(worker.ready_fd)
                    worker.ready_fd = None
                if worker.proc is not None and worker.proc.poll() is None:
                    worker.proc.send_signal(signal.SIGTERM)  # all at once; each stop() below awaits its own
            for worker in self.workers.values():
                if worker.child is not None:
                    worker.child.stop()
            self.workers.clear()
        for server in (self.viewer, self.slack, self.webhook):
            if server is not None:
                server.stop()
        self.viewer, self.slack, self.webhook = None, None, None
        self._stop_providers()
        self._archive_access()
        if self._moto is not None:
            self.progress("stopping: moto server")
            self._moto.stop()
            self._moto = None
        if self._dynamodb is not None:
            self.progress("stopping: DynamoDB (data kept)")
            self._dynamodb.stop()
            self._dynamodb = None
        if self.broker is not None and self._own_broker:
            self.progress("stopping: kafka (SIGTERM, data kept)")
            self.broker.stop()
        self.broker = None
        (self.data_dir / "stack.json").unlink(missing_ok=True)
        (self.data_dir / "env-vars.json").unlink(missing_ok=True)
        self.info = None

    def _archive_access(self) -> None:
        if self.permissions is not None and self.config.access_archive is not None and self.broker is not None:
            permissions.archive(self.permissions.directory, self.broker.authorizer_logs, self.config.access_archive)
        self.permissions = None

    def _stop_providers(self) -> None:
        for provider in (self.ses, self.sns):
            if provider is not None:
                provider.stop()
        self.ses = None
        self.sns = None


# --------------------------------------------------------------------------- moto server process


def _serve_moto(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.stack moto-server")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    args = parser.parse_args(argv)
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per AWS call
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the stack stops us after the functions
    parent = os.getppid()
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    with os.fdopen(args.ready_fd, "w") as ready:
        ready.write(json.dumps({"port": server.get_host_and_port()[1]}) + "\n")
    while not stop.wait(1.0):
        if os.getppid() != parent:
            break
    server.stop()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["moto-server"]:
        sys.exit(_serve_moto(sys.argv[2:]))
    sys.exit("usage: python -m devstack.stack moto-server --port N --ready-fd FD (use python -m devstack up)")
