"""Counts of what one execution environment does: AWS calls by kind and handler invocations, for the benchmarks.

With ``DEVSTACK_CALL_COUNTS=<dir>``, a function process counts every AWS call with a botocore ``before-call`` handler
("Event Reference", https://boto3.amazonaws.com/v1/documentation/api/latest/guide/events.html), times its handler's
invocations and writes the cumulative counts to ``<dir>/<function>-<pid>.json`` every half second and at exit
(``{"function", "pid", "aws_calls": {"dynamodb.PutItem": 4, ...}, "invocations", "invocation_seconds"}``); a reader
takes the difference of two snapshots. Without the variable nothing is installed.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "DEVSTACK_CALL_COUNTS"
INTERVAL_SECONDS = 0.5


class CallCounts:
    def __init__(self, directory: Path, function: str) -> None:
        self.path = directory / f"{function}-{os.getpid()}.json"
        self.function = function
        self.calls: Counter[str] = Counter()
        self.invocations = 0
        self.invocation_seconds = 0.0
        self._lock = threading.Lock()

    def on_call(self, model: Any = None, params: Any = None, **_: Any) -> None:
        """botocore ``before-call``: one AWS API call (before retries, as billed per request). Batches and
        transactions also count their items (``<kind>.items``), as DynamoDB bills each item."""
        if model is None:
            return
        kind = f"{model.service_model.service_name}.{model.name}"
        items = _items(model.name, (params or {}).get("body"))
        with self._lock:
            self.calls[kind] += 1
            if items is not None:
                self.calls[f"{kind}.items"] += items

    def timed(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def invoke(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return handler(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - began
                with self._lock:
                    self.invocations += 1
                    self.invocation_seconds += elapsed

        return invoke

    def dump(self) -> None:
        with self._lock:
            data = {
                "function": self.function,
                "pid": os.getpid(),
                "aws_calls": dict(self.calls),
                "invocations": self.invocations,
                "invocation_seconds": self.invocation_seconds,
            }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)

    def _dump_forever(self) -> None:
        while True:
            time.sleep(INTERVAL_SECONDS)
            self.dump()


_BATCHES = ("BatchWriteItem", "BatchGetItem", "TransactWriteItems", "TransactGetItems")


def _items(operation: str, body: Any) -> int | None:
    """Items of a DynamoDB batch or transaction request (its JSON body as botocore serialized it)."""
    if operation not in _BATCHES or not body:
        return None
    try:
        request = json.loads(body)
    except (TypeError, ValueError):
        return None
    if operation.startswith("Transact"):
        return len(request.get("TransactItems", []))
    if operation == "BatchGetItem":
        return sum(len(table.get("Keys", [])) for table in request.get("RequestItems", {}).values())
    return sum(len(requests) for requests in request.get("RequestItems", {}).values())


_installed: CallCounts | None = None


def install_from_env(function: str) -> CallCounts | None:
    """Count this process's AWS calls when ``DEVSTACK_CALL_COUNTS`` names a directory (once per process)."""
    global _installed  # noqa: PLW0603
    directory = os.environ.get(ENV)
    if not directory or _installed is not None:
        return _installed
    from devstack.iam.guard import on_new_clients  # noqa: PLC0415

    counts = CallCounts(Path(directory), function)
    on_new_clients(lambda client: client.meta.events.register("before-call", counts.on_call))
    Path(directory).mkdir(parents=True, exist_ok=True)
    counts.dump()
    atexit.register(counts.dump)
    threading.Thread(target=counts._dump_forever, name="call-counts", daemon=True).start()
    _installed = counts
    return counts


def read(directory: Path) -> dict[str, dict[str, Any]]:
    """Every snapshot in ``directory``, by file stem (``<function>-<pid>``)."""
    found: dict[str, dict[str, Any]] = {}
    for path in directory.glob("*.json"):
        try:
            found[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return found
