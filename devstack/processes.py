"""The local stack's child processes, through mirakuru's executors.

Each child runs in its own process group (``os.setsid``); ``stop()`` sends SIGTERM to the group and SIGKILL after the
executor's timeout; whatever an executor started is killed when Python exits. Two choices differ from mirakuru's
defaults: a child gets exactly the environment given (mirakuru starts from ``os.environ``; a function must not
inherit the stack's own variables), and how a child ended is its log's business, not an error of ``stop()``.

What outlives the process that started it (the Kafka broker, the Docker engine) is started with ``subprocess``.
"""

from __future__ import annotations

import contextlib
from typing import Self

from mirakuru import SimpleExecutor, TCPExecutor
from mirakuru.base import ENV_UUID
from mirakuru.exceptions import ProcessFinishedWithError


class Child(SimpleExecutor):
    """``Child(command, envvars=..., stdout=..., timeout=...).start()``: started, not awaited."""

    @property
    def envvars(self) -> dict[str, str]:
        return {**self._envvars, ENV_UUID: self._uuid}  # the marker finds the group's leftovers at exit

    def stop(self, stop_signal: int | None = None, expected_returncode: int | None = None) -> Self:
        with contextlib.suppress(ProcessFinishedWithError):
            super().stop(stop_signal, expected_returncode)
        return self


class ListeningChild(Child, TCPExecutor):
    """``ListeningChild(command, host, port, ...).start()`` returns once ``host:port`` accepts connections."""
