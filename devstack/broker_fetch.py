"""Fetching Apache Kafka: the broker jars from Maven Central, and the tools (Java, Maven) that fetch and run them.

``devstack/kafka/pom.xml`` lists the broker's artifacts; ``mvn dependency:copy-dependencies`` copies them into
``.cache/kafka/<version>/libs`` once. The errors every broker module raises live here too, since fetching is the
first thing that can go wrong.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

KAFKA_VERSION = "4.4.0"
"""Kafka release fetched from Maven Central (passed to the pom as -Dkafka.version)."""

REPO_ROOT = Path(__file__).resolve().parents[1]
POM_FILE = Path(__file__).resolve().parent / "kafka" / "pom.xml"
DEFAULT_CACHE_DIR = REPO_ROOT / ".cache" / "kafka" / KAFKA_VERSION

_KAFKA_JAR = "kafka_2.13-{version}.jar"
_FETCH_MARKER = ".complete"


class BrokerError(RuntimeError):
    """Anything that goes wrong while fetching, starting or talking to the broker."""


class MissingToolError(BrokerError):
    """A required executable (``java`` or ``mvn``) is not installed / not on PATH."""

    def __init__(self, tool: str, hint: str) -> None:
        super().__init__(f"required tool {tool!r} not found: {hint}")
        self.tool = tool


class BrokerTimeoutError(BrokerError, TimeoutError):
    """The broker/cluster did not become ready (or stop) in time."""


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise MissingToolError(
            "java",
            "Kafka 4.x needs a Java 17+ runtime; install one "
            "(e.g. `apt-get install default-jre-headless`) or set JAVA_HOME",
        )
    return found


def find_mvn() -> str:
    found = shutil.which("mvn")
    if found is None:
        raise MissingToolError(
            "mvn",
            "Apache Maven is used to download the Kafka jars from Maven Central; "
            "install it (e.g. `apt-get install maven`)",
        )
    return found


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _libs_dir(cache_dir: Path) -> Path:
    return cache_dir / "libs"


def is_fetched(cache_dir: Path | None = None, *, version: str = KAFKA_VERSION) -> bool:
    """True if :func:`fetch` would return immediately without running Maven."""
    cache_dir = (cache_dir or REPO_ROOT / ".cache" / "kafka" / version).resolve()
    libs = _libs_dir(cache_dir)
    return (cache_dir / _FETCH_MARKER).is_file() and (libs / _KAFKA_JAR.format(version=version)).is_file()


def fetch(cache_dir: Path | None = None, *, version: str = KAFKA_VERSION) -> Path:
    """Download the Kafka broker jars (once) and return the directory holding them.

    Idempotent and safe to call concurrently (file lock); Maven only runs when
    the jars are not there yet. Jars land in ``<cache_dir>/libs``; the default
    cache dir is ``.cache/kafka/<version>`` under the repo root (git-ignored).
    """
    cache_dir = (cache_dir or REPO_ROOT / ".cache" / "kafka" / version).resolve()
    libs = _libs_dir(cache_dir)
    if is_fetched(cache_dir, version=version):
        return libs
    mvn = find_mvn()
    find_java()  # Maven itself needs a JDK; fail with the clearer message.
    cache_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(cache_dir / ".lock"):
        if is_fetched(cache_dir, version=version):  # another process won the race
            return libs
        staging = Path(tempfile.mkdtemp(prefix="libs.", dir=cache_dir))
        try:
            cmd = [
                mvn,
                "-B",
                "-q",
                "-f",
                str(POM_FILE),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                f"-Dkafka.version={version}",
            ]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
                raise BrokerError(
                    f"fetching Kafka {version} with Maven failed (exit {result.returncode}): {' '.join(cmd)}\n{output}"
                )
            if not (staging / _KAFKA_JAR.format(version=version)).is_file():
                raise BrokerError(f"Maven succeeded but {_KAFKA_JAR.format(version=version)} is missing from {staging}")
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
            (cache_dir / _FETCH_MARKER).write_text(version + "\n")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return libs
