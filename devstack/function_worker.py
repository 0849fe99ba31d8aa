"""One function of template.yaml in its own process: a local Lambda execution environment and its trigger.

    python -m devstack.function_worker <FunctionLogicalId> [--http-port N] [--ready-fd FD] [--invoke-events FILE]

The process imports the function's handler from its ``CodeUri`` and runs what triggers it in template.yaml:

- Kafka event-source mappings (one :class:`devstack.esm.KafkaEventSourceMapping` each; invocations one at a
  time, as one execution environment runs one invocation at a time);
- HTTP API events: an API Gateway HTTP API on 127.0.0.1 (``--http-port``, 0 = a free port; with ``--reuse-port``
  several environments share the port);
- events of services that invoke it asynchronously (EventBridge rules, CloudWatch Logs subscriptions): Lambda's
  Invoke API on 127.0.0.1 (``devstack.invoke``), which the local stand-ins of those services call;
- with ``--invoke-events FILE``: one invocation per event of the file, then the process ends (the stack creates
  the template's custom resources this way, as CloudFormation invokes their function).

Several processes of one function are several execution environments (docs/local-stack.md, "How functions run").
When ready, one JSON line ``{"function": ..., "port": ...}`` is written to ``--ready-fd``. SIGTERM stops it
cleanly; started by the stack (``--ready-fd``), SIGINT is left to the parent; it also stops when its parent goes away.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from devstack import call_counts, permissions
from devstack.esm import Handler, KafkaEventSourceMapping, retry_delay
from devstack.faults import install_from_env
from devstack.http_server import HttpApiServer
from devstack.template_config import DEFAULT_TEMPLATE, FunctionSpec, load_template

log = logging.getLogger("devstack.worker")

BACKOFF_ENV = "DEVSTACK_RETRY_BACKOFF_SECONDS"
BACKOFF_CAP_ENV = "DEVSTACK_RETRY_BACKOFF_CAP_SECONDS"
STALLED_SECONDS = 20.0  # retries back off at most 10 s, a poll returns within the 1 s window, lag is checked every 5 s


def load_handler(spec: FunctionSpec) -> Handler:
    """Import ``Handler`` from ``CodeUri`` as the Lambda runtime does."""
    code = str(spec.code_uri)
    if code not in sys.path:
        sys.path.insert(0, code)
    module = importlib.import_module(spec.handler_module)
    handler: Handler = getattr(module, spec.handler_function)
    return handler


def _watch_parent(parent: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        if os.getppid() != parent:
            log.warning("parent process went away; stopping")
            stop.set()


def _watchdog(mappings: Sequence[KafkaEventSourceMapping], stop: threading.Event) -> None:
    """End the process when a mapping stops making progress; the stack starts a new execution environment,
    whose consumer resumes from the committed offsets (nothing is lost; redeliveries are deduplicated)."""
    while not stop.wait(5.0):
        for mapping in mappings:
            if mapping.stalled_for() > STALLED_SECONDS:
                log.error(
                    "%s: no progress for %.0f s; replacing this environment",
                    mapping.trigger.name,
                    mapping.stalled_for(),
                )
                os._exit(75)


def _security_config(settings: Any) -> dict[str, Any]:
    """The Kafka client's security settings (protocol, SASL mechanism and credentials) as the product's producer
    has them."""
    from notifications.kafka.producer import producer_config  # noqa: PLC0415

    keys = ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password")
    return {k: v for k, v in producer_config(settings).items() if k in keys}


def _signal_ready(fd: int | None, info: dict[str, Any]) -> None:
    if fd is None:
        return
    with os.fdopen(fd, "w") as ready:
        ready.write(json.dumps(info) + "\n")


def invoke_events(spec: FunctionSpec, events: Sequence[dict[str, Any]]) -> int:
    """Invoke the function once per event, in order (as CloudFormation invokes a custom resource's function)."""
    from devstack.lambda_context import LocalLambdaContext  # noqa: PLC0415

    permissions.install_from_env(spec.logical_id)
    handler = load_handler(spec)
    for event in events:
        handler(event, LocalLambdaContext(spec.logical_id, timeout_seconds=spec.timeout_seconds))
    return 0


def serve(
    spec: FunctionSpec, stop: threading.Event, *, http_port: int | None, ready_fd: int | None, reuse_port: bool = False
) -> int:
    permissions.install_from_env(spec.logical_id)  # before any AWS client: every call checked against the role
    counts = call_counts.install_from_env(spec.logical_id)
    handler = load_handler(spec)
    if counts is not None:
        handler = counts.timed(handler)
    if spec.environment.get("CHANNEL") and (rate := install_from_env()):
        log.warning("chaos: %s's provider fails %.0f%% of calls transiently", spec.logical_id, rate * 100)
    if spec.kafka_triggers:
        from notifications.kafka.producer import KafkaPublisher  # noqa: PLC0415
        from notifications.settings import KafkaSettings  # noqa: PLC0415

        # The mapping reads, and writes on-failure records, as the function's execution role (Lambda developer
        # guide, "Amazon MSK" execution role permissions): the function's own Kafka settings and credentials.
        settings = KafkaSettings.from_env()
        bootstrap = settings.kafka_bootstrap_servers
        publisher = KafkaPublisher(settings)
        backoff = partial(
            retry_delay,
            base=float(os.environ.get(BACKOFF_ENV, "0.5")),
            cap=float(os.environ.get(BACKOFF_CAP_ENV, "10")),
        )
        lock = threading.Lock()
        mappings = [
            KafkaEventSourceMapping(
                trigger,
                handler,
                bootstrap=bootstrap,
                destination=publisher,
                timeout_seconds=spec.timeout_seconds,
                backoff=backoff,
                invoke_lock=lock,
                consumer_config=_security_config(settings),
            )
            for trigger in spec.kafka_triggers
            if trigger.enabled
        ]
        failed: list[BaseException] = []

        def run(mapping: KafkaEventSourceMapping) -> None:
            try:
                mapping.run(stop)
            except BaseException as exc:
                log.exception("%s stopped on an error", mapping.trigger.name)
                failed.append(exc)
                stop.set()

        threads = [threading.Thread(target=run, args=(m,), name=m.trigger.name) for m in mappings]
        for thread in threads:
            thread.start()
        threading.Thread(target=_watchdog, args=(mappings, stop), name="poll-watchdog", daemon=True).start()
        while not stop.is_set() and not all(m.assigned.is_set() for m in mappings):
            stop.wait(0.1)
        if not stop.is_set():
            _signal_ready(
                ready_fd, {"function": spec.logical_id, "topics": [t for m in mappings for t in m.trigger.topics]}
            )
        for thread in threads:
            thread.join()
        publisher.close()
        return 1 if failed else 0
    served: dict[str, Any] = {
        "function_name": spec.logical_id,
        "timeout_seconds": spec.timeout_seconds,
        "port": http_port or 0,
    }
    if spec.http_routes:
        api = HttpApiServer(handler, **served, routes=spec.http_routes, reuse_port=reuse_port).start()
        stop_serving = api.stop
        ready: dict[str, Any] = {"port": api.port}
    elif spec.async_events:
        from devstack.invoke import RETRY_ENV, InvokeServer  # noqa: PLC0415

        invoker = InvokeServer(handler, **served, retry_delay=float(os.environ.get(RETRY_ENV, "1.0"))).start()
        stop_serving, ready = invoker.stop, {"invoke_url": invoker.url()}
    else:
        log.error("%s has no Kafka trigger, HTTP API or asynchronous event: nothing runs it locally", spec.logical_id)
        return 2
    _signal_ready(ready_fd, {"function": spec.logical_id, **ready})
    stop.wait()
    stop_serving()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.function_worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("function", help="logical id of an AWS::Serverless::Function in the template")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--http-port", type=int, default=None, help="port of the HTTP API (HTTP-triggered functions)")
    parser.add_argument("--ready-fd", type=int, default=None, help="write one JSON line here when ready")
    parser.add_argument(
        "--reuse-port", action="store_true", help="share --http-port with other environments (SO_REUSEPORT)"
    )
    parser.add_argument(
        "--invoke-events", type=Path, default=None, help="invoke once per event of this JSON list, then exit"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    if args.ready_fd is not None:
        # Started by the local stack (in a process group of our own: devstack.processes): the stack stops us in
        # order, with SIGTERM; a SIGINT sent to us alone is not a stop.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=_watch_parent, args=(os.getppid(), stop), daemon=True).start()
    spec = load_template(args.template).function(args.function)
    if args.invoke_events is not None:
        return invoke_events(spec, json.loads(args.invoke_events.read_text()))
    return serve(spec, stop, http_port=args.http_port, ready_fd=args.ready_fd, reuse_port=args.reuse_port)


if __name__ == "__main__":
    sys.exit(main())
