"""The fresh-machine run starts in the background as soon as the session has collected its test, so that its
minutes overlap the other suites; the test is moved to the end of the session and awaits it.

pytest calls a conftest's collection and session hooks for the whole session, not only for this folder (this
file is loaded only when tests/fresh is collected): the hooks below move and start only what is in tests/fresh.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

from devstack import fresh_machine

HERE = Path(__file__).resolve().parent


class BackgroundRun:
    """One :func:`devstack.fresh_machine.run` in a thread; ``stop`` cuts it short (SIGINT, then kill)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.result: Future[fresh_machine.FreshRun] = Future()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fresh-machine", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result.set_result(fresh_machine.run(self.log, cancel=self._cancel))
        except BaseException as exc:  # handed to the test that awaits it
            self.result.set_exception(exc)

    def stop(self) -> None:
        self._cancel.set()
        self._thread.join(timeout=300)


_RUN = pytest.StashKey[BackgroundRun]()


def _is_fresh(item: pytest.Item) -> bool:
    return HERE in item.path.parents


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_is_fresh)  # stable: these tests last, every other in its order


def pytest_collection_finish(session: pytest.Session) -> None:
    wanted = any(_is_fresh(item) for item in session.items) and not session.config.option.collectonly
    if wanted and not fresh_machine.missing_prerequisites():  # else the test fails, saying what is missing
        session.stash[_RUN] = BackgroundRun(fresh_machine.DEFAULT_LOG)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if (run := session.stash.get(_RUN, None)) is not None:
        run.stop()


@pytest.fixture
def fresh_machine_run(request: pytest.FixtureRequest) -> BackgroundRun:
    """The session's run of the README's command on a fresh root (started now if the session did not)."""
    if missing := fresh_machine.missing_prerequisites():
        pytest.fail("the fresh-machine test needs: " + "; ".join(missing), pytrace=False)
    stash = request.session.stash
    if _RUN not in stash:
        stash[_RUN] = BackgroundRun(fresh_machine.DEFAULT_LOG)
    return stash[_RUN]
