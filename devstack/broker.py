"""A real single-node Apache Kafka (KRaft) broker for local development and tests: the command line, and the
names the rest of the project imports.

The job is split by module: ``broker_fetch`` (the jars from Maven Central, via ``devstack/kafka/pom.xml``),
``broker_process`` (format, start, wait, stop one KRaft node) and ``broker_cluster`` (wait for any cluster, create
topics). Library use::

    with KafkaBroker(tmp_path / "kafka") as broker:
        ensure_topics(broker.bootstrap, {"purchases": 3})

CLI (see ``python -m devstack.broker --help``)::

    python -m devstack.broker fetch      # download the jars once, print their directory
    python -m devstack.broker start      # daemonizes, prints 127.0.0.1:<port>
    python -m devstack.broker status
    python -m devstack.broker stop

If ``KAFKA_BOOTSTRAP_SERVERS`` is set, ``start`` only waits for that cluster to answer and prints it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from devstack.broker_cluster import BOOTSTRAP_ENV, ensure_topics, wait_until_ready
from devstack.broker_fetch import (
    DEFAULT_CACHE_DIR,
    KAFKA_VERSION,
    REPO_ROOT,
    BrokerError,
    BrokerTimeoutError,
    MissingToolError,
    fetch,
    is_fetched,
)
from devstack.broker_process import DEFAULT_DATA_DIR, KafkaBroker

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

    data_dir, cache_dir = argparse.ArgumentParser(add_help=False), argparse.ArgumentParser(add_help=False)
    data_dir.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="broker state dir (default: %(default)s)"
    )
    cache_dir.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help="where the Kafka jars are cached (default: %(default)s)",
    )

    start = sub.add_parser(
        "start",
        parents=[data_dir, cache_dir],
        help="start the broker in the background and print its bootstrap address",
    )
    start.add_argument("--port", type=int, default=0, help="client port (default: free/persisted)")
    start.add_argument("--controller-port", type=int, default=0, help="KRaft controller port (default: free)")
    start.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    start.add_argument("--foreground", action="store_true", help="stay attached; stop the broker on Ctrl-C/SIGTERM")
    start.set_defaults(func=_cmd_start)

    stop = sub.add_parser("stop", parents=[data_dir], help="stop the broker (SIGTERM, SIGKILL after --timeout)")
    stop.add_argument("--timeout", type=float, default=30.0)
    stop.set_defaults(func=_cmd_stop)

    status = sub.add_parser("status", parents=[data_dir], help="exit 0 if the broker answers, 3 if stopped, else 1")
    status.add_argument("--timeout", type=float, default=5.0)
    status.set_defaults(func=_cmd_status)

    fetch_cmd = sub.add_parser("fetch", parents=[cache_dir], help="download the Kafka jars and print their directory")
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
