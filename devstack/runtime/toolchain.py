"""What runs a packaged function like Lambda's python3.13 runtime: the Python, the emulator, the runtime client.

- The runtime's Python: ``python3.13`` on PATH or under pyenv. Without it, the current interpreter stands in and
  :func:`runtime_python` says so loudly (``RuntimePython.warning``): the functions then run on another version
  than Lambda's, and the layers' .pyc files are compiled for that version.
- AWS's Runtime Interface Emulator, built from its Go module (``go install``) into ``.cache/runtime/rie``.
- A virtualenv of that Python with what the Lambda runtime provides under ``/var/runtime``: ``awslambdaric`` (the
  runtime interface client) and boto3, installed from ``requirements.lock`` with hashes.

Everything is cached under ``.cache/runtime`` by version or content hash, so only the first run pays for it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache" / "runtime"
LOCK_FILE = REPO_ROOT / "requirements.lock"
INSTALL_LOCKED = REPO_ROOT / "layers" / "deps" / "install_locked.py"

LAMBDA_PYTHON = "3.13"  # template.yaml Globals: Runtime python3.13
RIE_MODULE = "github.com/aws/aws-lambda-runtime-interface-emulator"
# The module's newest commit as the Go module proxy serves it (its v1.x release tags are not served).
RIE_VERSION = "v0.0.0-20261030222936-bef5c4ba774d"
# What Lambda's Python runtime ships in /var/runtime besides the standard library.
RUNTIME_PACKAGES = ("awslambdaric", "boto3")


class ToolchainError(RuntimeError):
    """Something the runtime emulation needs is missing or failed to build."""


@dataclass(frozen=True)
class RuntimePython:
    path: Path
    version: str  # "3.13"

    @property
    def is_lambda_version(self) -> bool:
        return self.version == LAMBDA_PYTHON

    @property
    def warning(self) -> str | None:
        if self.is_lambda_version:
            return None
        return (
            f"WARNING: Python {LAMBDA_PYTHON} (Lambda's runtime) was not found on PATH or under pyenv; the runtime "
            f"emulation runs on Python {self.version} ({self.path}) instead, and the layers' .pyc files are "
            f"compiled for {self.version}. Install Python {LAMBDA_PYTHON} to test what Lambda runs."
        )


def _version_of(python: str) -> str | None:
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _pyenv_root() -> Path | None:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv:
        done = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30, check=False)
        if done.returncode == 0 and done.stdout.strip():
            return Path(done.stdout.strip())
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def runtime_python(version: str = LAMBDA_PYTHON) -> RuntimePython:
    """Lambda's Python version where this machine has it (PATH, then pyenv), else the current interpreter."""
    candidates = [shutil.which(f"python{version}")]
    root = _pyenv_root()
    if root is not None:
        candidates += [str(p) for p in sorted((root / "versions").glob(f"{version}*/bin/python{version}"))]
    for candidate in candidates:
        # A pyenv shim is on PATH even when that version is not selected; running it tells.
        if candidate and _version_of(candidate) == version:
            return RuntimePython(Path(candidate), version)
    return RuntimePython(Path(sys.executable), f"{sys.version_info[0]}.{sys.version_info[1]}")


def digest(*parts: bytes | str | Path) -> str:
    """A short hash of strings, bytes, files and folders (every file under a folder, by relative path)."""
    sha = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path) and part.is_dir():
            for path in sorted(part.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    sha.update(str(path.relative_to(part)).encode() + b"\0" + path.read_bytes())
        elif isinstance(part, Path):
            sha.update(part.read_bytes())
        else:
            sha.update(part.encode() if isinstance(part, str) else part)
        sha.update(b"\0\0")
    return sha.hexdigest()[:16]


def build_rie(cache: Path = CACHE_DIR) -> Path:
    """The ``aws-lambda-rie`` binary, built from its Go module on first use (needs Go and the Go module proxy)."""
    binary = cache / "rie" / RIE_VERSION / "aws-lambda-rie"
    if binary.is_file():
        return binary
    go = shutil.which("go")
    if go is None:
        raise ToolchainError(
            "Go 1.26 or newer is needed to build AWS's Runtime Interface Emulator from its module "
            f"({RIE_MODULE}); see https://go.dev/doc/install"
        )
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=binary.parent) as tmp:
        env = {**os.environ, "GOBIN": tmp, "CGO_ENABLED": "0"}
        done = subprocess.run(
            [go, "install", f"{RIE_MODULE}/cmd/aws-lambda-rie@{RIE_VERSION}"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ToolchainError(f"go install {RIE_MODULE}@{RIE_VERSION} failed:\n{done.stderr[-3000:]}")
        os.replace(Path(tmp) / "aws-lambda-rie", binary)
    return binary


def cached(out: Path, make: Callable[[Path], object]) -> Path:
    """``out`` as ``make(out)`` fills it, made once: ``.complete`` marks a finished one (others are made again)."""
    if not (out / ".complete").is_file():
        shutil.rmtree(out, ignore_errors=True)
        make(out)
        (out / ".complete").touch()
    return out


def runtime_venv(python: RuntimePython, cache: Path = CACHE_DIR) -> Path:
    """A virtualenv of the runtime's Python with awslambdaric and boto3 from the lock (hash-checked)."""

    def make(venv: Path) -> None:
        subprocess.run([str(python.path), "-m", "venv", str(venv)], check=True)
        install = [str(venv / "bin" / "python"), str(INSTALL_LOCKED), "--lock", str(LOCK_FILE), *RUNTIME_PACKAGES]
        options = ["--", "--quiet", "--only-binary=:all:"]
        done = subprocess.run([*install, *options], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            packages = ", ".join(RUNTIME_PACKAGES)
            raise ToolchainError(f"installing {packages} into {venv} failed:\n{done.stderr[-3000:]}")

    return cached(cache / f"venv-python{python.version}-{digest(str(python.path), LOCK_FILE, INSTALL_LOCKED)}", make)
