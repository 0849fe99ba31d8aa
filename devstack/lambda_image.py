"""A stand-in for Lambda's python3.13 base image, built locally for ``sam local invoke`` where no registry is reached.

    python -m devstack.lambda_image      # builds it into the private engine (cached), prints its name

SAM CLI runs a function in ``public.ecr.aws/lambda/python:3.13-<arch>`` plus its own emulator and the layers. This
module makes an image of that name with the file layout of AWS's image ("AWS base images for Lambda",
https://docs.aws.amazon.com/lambda/latest/dg/python-image.html): the root of :mod:`devstack.rootfs` (Debian trixie,
whose ``python3`` is 3.13), ``/var/lang/bin/python3.13``, ``/var/task``, ``/opt``, and ``/var/runtime`` with
``awslambdaric`` and boto3 from ``requirements.lock`` and the ``bootstrap`` SAM's emulator starts, on the runtime's
module search path (https://docs.aws.amazon.com/lambda/latest/dg/python-package.html#python-package-searchpath) and
environment (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime).
Only the machine's own architecture is built (docs/deploy.md); a label carries the hash of the recipe, so the image
is rebuilt only when the root, the lock or the bootstrap changes.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from devstack import rootfs
from devstack.docker_engine import Engine, EngineError
from devstack.runtime.toolchain import INSTALL_LOCKED, LOCK_FILE, RUNTIME_PACKAGES
from devstack.runtime.toolchain import LAMBDA_PYTHON as PYTHON

LABEL = "devstack.recipe"
ARCHITECTURES = {"x86_64": ("x86_64", "manylinux2014_x86_64"), "aarch64": ("arm64", "manylinux2014_aarch64")}

BOOTSTRAP = f"""#!/bin/sh
# The python{PYTHON} runtime's bootstrap: the runtime interface client runs the function's handler, with Lambda's
# module search path (task root, then the layers, then the runtime's own packages).
export AWS_EXECUTION_ENV=AWS_Lambda_python{PYTHON}
export PYTHONPATH=/var/task:/opt/python/lib/python{PYTHON}/site-packages:/opt/python:/var/runtime
exec /var/lang/bin/python{PYTHON} -m awslambdaric "${{_HANDLER:-$AWS_LAMBDA_FUNCTION_HANDLER}}"
"""
# The configuration of AWS's image (docker inspect public.ecr.aws/lambda/python:3.13).
CONFIG = (
    "ENV LANG=en_US.UTF-8",
    "ENV TZ=:/etc/localtime",
    "ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "ENV LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib"
    ":/opt/lib",
    "ENV LAMBDA_TASK_ROOT=/var/task",
    "ENV LAMBDA_RUNTIME_DIR=/var/runtime",
    "WORKDIR /var/task",
    'ENTRYPOINT ["/var/runtime/bootstrap"]',
)


class ImageError(RuntimeError):
    """The stand-in image could not be built."""


def architecture() -> tuple[str, str]:
    """Lambda's name for this machine's architecture and the wheel platform of its runtime packages."""
    machine = platform.machine()
    if machine not in ARCHITECTURES:
        raise ImageError(f"no Lambda architecture for this machine ({machine}); Lambda runs x86_64 and arm64")
    return ARCHITECTURES[machine]


def image_name() -> str:
    return f"public.ecr.aws/lambda/python:{PYTHON}-{architecture()[0]}"


def recipe(tarball: Path) -> str:
    """What the image is made of: the root (its name carries its recipe's hash), the lock, the bootstrap, config."""
    digest = hashlib.sha256()
    for part in (tarball.name, LOCK_FILE.read_text(), BOOTSTRAP, "\n".join(CONFIG), architecture()[1]):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def ensure(engine: Engine) -> str:
    """The image in ``engine``, built first when missing or made from another recipe; its name."""
    name = image_name()
    tarball = rootfs.tarball()
    wanted = recipe(tarball)
    found = engine.docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', name, check=False)
    if found.strip() == wanted:
        return name
    with tempfile.TemporaryDirectory(prefix="lambda-image-", dir=rootfs.CACHE_DIR) as work:
        root = Path(work) / "root"
        rootfs.extract(tarball, root)
        _lambda_layout(root)
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-cf", "-", "."], stdout=subprocess.PIPE)
        changes = [arg for line in (*CONFIG, f"LABEL {LABEL}={wanted}") for arg in ("--change", line)]
        done = subprocess.run(
            ["docker", "import", *changes, "-", name],
            stdin=tar.stdout,
            env=engine.env(),
            capture_output=True,
            check=False,
        )
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        if done.returncode != 0 or tar.returncode != 0:
            raise ImageError(f"docker import of {name} failed: {done.stderr.decode(errors='replace')[-2000:]}")
    return name


def _lambda_layout(root: Path) -> None:
    for folder in ("var/task", "opt", "var/lang/bin", "var/runtime"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    python = root / "var/lang/bin" / f"python{PYTHON}"
    python.symlink_to(f"/usr/bin/python{PYTHON}")
    for alias in ("python3", "python"):
        (root / "var/lang/bin" / alias).symlink_to(f"python{PYTHON}")
    if not (root / "usr/bin" / f"python{PYTHON}").exists():
        raise ImageError(f"the root file system has no python{PYTHON} (devstack.rootfs: Debian trixie)")
    install = [sys.executable, str(INSTALL_LOCKED), "--lock", str(LOCK_FILE), *RUNTIME_PACKAGES, "--"]
    pip_options = ["--quiet", "--no-compile", "--only-binary=:all:", "--implementation", "cp"]
    pip_options += ["--platform", architecture()[1], "--python-version", PYTHON, "--target", str(root / "var/runtime")]
    done = subprocess.run([*install, *pip_options], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageError(f"installing {', '.join(RUNTIME_PACKAGES)} for the image failed:\n{done.stderr[-3000:]}")
    bootstrap = root / "var/runtime/bootstrap"
    bootstrap.write_text(BOOTSTRAP)
    bootstrap.chmod(0o755)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.lambda_image", description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    engine = Engine()
    try:
        started = not engine.running()
        engine.start()
        try:
            print(ensure(engine))
        finally:
            if started:
                engine.stop()
    except (EngineError, ImageError, rootfs.RootfsError) as exc:
        print(f"lambda image: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
