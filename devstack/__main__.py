"""The local stack's command line.

    python -m devstack up [--demo] [--port 3000]   # everything on this machine; Ctrl-C stops it
                                                   # (the delivery viewer: http://127.0.0.1:3004/,
                                                   # unless --no-viewer)
    python -m devstack demo [--count N]            # post sample purchases to the running stack
    python -m devstack tail [--from-beginning]     # follow deliveries and dead letters
    python -m devstack redrive list|replay ...     # the operator's redrive tool, on the local broker

No Docker: Kafka is a real broker started from Maven Central jars, AWS APIs are a moto server, and the functions
run in local execution environments fed by local API Gateway and Kafka event-source mappings (see
``devstack.stack``). ``KAFKA_BOOTSTRAP_SERVERS`` points the stack at an existing cluster instead of the broker.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from devstack.broker import BOOTSTRAP_ENV, BrokerError, KafkaBroker
from devstack.demo import run_demo
from devstack.stack import DEFAULT_DATA_DIR, LocalStack, StackConfig, StackError, StackInfo
from devstack.template_config import DEFAULT_TEMPLATE, TemplateError


def _say(line: str) -> None:
    print(line, flush=True)


def _up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    starting = True

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if starting:
            raise KeyboardInterrupt

    if args.demo and args.services_only:
        raise SystemExit("--demo posts to the API, which --services-only does not start")
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    config = StackConfig(
        data_dir=args.data_dir,
        template=args.template,
        api_port=args.port,
        viewer=not args.no_viewer,
        viewer_port=args.viewer_port,
        concurrency=args.concurrency,
        bootstrap=os.environ.get(BOOTSTRAP_ENV, "").strip() or None,
        functions_host=args.functions_host,
        functions=not args.services_only,
    )
    stack = LocalStack(config, progress=_say)
    try:
        info = stack.start()
        starting = False
        if args.demo and not stop.is_set():
            run_demo(info.api_url, info.channels, count=args.count, out=_say, push_endpoints=info.push_endpoints)
        _say(f"up: running; delivery viewer at {info.viewer_url}" if info.viewer_url else "up: running")
        _say("up: Ctrl-C stops everything (Kafka data is kept for the next start)")
        stop.wait()
    except KeyboardInterrupt:
        _say("up: interrupted")
    except (StackError, BrokerError, TemplateError) as exc:
        _say(f"up: error: {exc}")
        stack.stop()
        return 1
    finally:
        starting = False
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean stop short
    stack.stop()
    _say("up: stopped")
    return 0


def _demo(args: argparse.Namespace) -> int:
    info = StackInfo.read(args.data_dir)
    api = args.api or (info.api_url if info else "http://127.0.0.1:3000")
    channels = args.channels.split(",") if args.channels else (info.channels if info else ["email"])
    push_endpoints = info.push_endpoints if info else []
    results = run_demo(api, channels, count=args.count, timeout=args.timeout, out=_say, push_endpoints=push_endpoints)
    return 0 if results and all(r.delivered for r in results) else 1


def _tail(args: argparse.Namespace) -> int:
    from devstack.tail import follow  # noqa: PLC0415

    info = StackInfo.read(args.data_dir)
    bootstrap = args.bootstrap or (info.bootstrap if info else None)
    if bootstrap is None:
        _say(f"tail: no running stack in {args.data_dir} (start one with `python -m devstack up`)")
        return 1
    logs = Path(info.logs_dir) if info else args.data_dir / "logs"
    with contextlib.suppress(KeyboardInterrupt):
        follow(bootstrap, logs, from_beginning=args.from_beginning, out=_say)
    return 0


def _redrive(args: argparse.Namespace) -> int:
    from ops import redrive  # noqa: PLC0415

    argv = list(args.args)
    if not os.environ.get(BOOTSTRAP_ENV, "").strip():  # else the operator's cluster, as the tool itself reads it
        info = StackInfo.read(args.data_dir)
        broker = KafkaBroker(args.data_dir / "kafka")
        if info is not None:
            argv = ["--bootstrap", info.bootstrap, *argv]
        elif broker.pid is not None:  # started by `python -m devstack.broker start`
            argv = ["--bootstrap", broker.bootstrap, *argv]
    return redrive.main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="state dir (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start Kafka, moto, receivers and every function; Ctrl-C stops")
    up.add_argument("--port", type=int, default=3000, help="HTTP API port on 127.0.0.1 (default: %(default)s)")
    up.add_argument(
        "--viewer-port", type=int, default=3004, help="delivery viewer port, another when taken (default: %(default)s)"
    )
    up.add_argument("--no-viewer", action="store_true", help="start no delivery viewer (an optional part)")
    up.add_argument("--demo", action="store_true", help="post sample purchases once everything runs")
    up.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="execution environments per function (Kafka-triggered: at most one per partition; default: as Lambda "
        "scales out, 4 for the HTTP API and one per partition for Kafka triggers)",
    )
    up.add_argument("--count", type=int, default=3, help="purchases posted by --demo (default: %(default)s)")
    up.add_argument(
        "--functions-host",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="serve what the functions call (Kafka, moto, DynamoDB, SES, SNS, receivers) on ADDRESS, a Docker "
        "bridge's gateway, so that the containers of `sam local invoke` reach it (default: %(default)s)",
    )
    up.add_argument(
        "--services-only",
        action="store_true",
        help="start what the functions call but no function (they run elsewhere: sam local invoke)",
    )
    up.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help=argparse.SUPPRESS)
    up.set_defaults(func=_up)

    demo = sub.add_parser("demo", help="post sample purchases to the running stack and show what happened")
    demo.add_argument("--count", type=int, default=3)
    demo.add_argument("--api", help="API base URL (default: the running stack's)")
    demo.add_argument("--channels", help="comma-separated channels (default: every channel the stack runs)")
    demo.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for delivery")
    demo.set_defaults(func=_demo)

    tail = sub.add_parser("tail", help="follow deliveries and dead letters, one line each")
    tail.add_argument("--from-beginning", action="store_true", help="start with what already happened")
    tail.add_argument("--bootstrap", help="Kafka bootstrap servers (default: the running stack's)")
    tail.set_defaults(func=_tail)

    # Every argument, options included, goes to the tool as it is ("-" is not an option prefix here).
    redrive = sub.add_parser(
        "redrive",
        add_help=False,
        prefix_chars="+",
        help="list and replay dead letters (`notifications-redrive` on the local broker)",
    )
    redrive.add_argument("args", nargs="*", help="arguments of notifications-redrive")
    redrive.set_defaults(func=_redrive)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
