"""The layers as their Makefiles build them: precompiled for the runtime's Python, reproducible from the lock."""

from __future__ import annotations

import hashlib
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from devstack.runtime.package import Build, pyc_count
from devstack.runtime.toolchain import LOCK_FILE
from layers.deps.install_locked import canonical, lock_entries

ROOT = Path(__file__).resolve().parents[2]


def runtime_magic(build: Build) -> bytes:
    done = subprocess.run(
        [
            str(build.python.path),
            "-c",
            "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return bytes.fromhex(done.stdout)


def test_every_layer_module_is_precompiled_unchecked_for_the_runtime_python(runtime_build: Build):
    # Given the runtime's bytecode version (.pyc magic number) and the packaged /opt of every function
    magic = runtime_magic(runtime_build)
    tag = f"cpython-{runtime_build.python.version.replace('.', '')}"
    for opt in {function.opt for function in runtime_build.functions.values()}:
        modules = sorted((opt / "python").rglob("*.py"))
        assert len(modules) > 100, opt  # the shared package and the dependencies
        for module in modules:
            # Then each module has a .pyc of that version (PEP 3147 name), hash-based and never checked against
            # its source (PEP 552: flags word 0b01), which Python loads without stat-ing the .py
            pyc = module.parent / "__pycache__" / f"{module.stem}.{tag}.pyc"
            assert pyc.is_file(), module
            header = pyc.read_bytes()[:8]
            assert header[:4] == magic, pyc
            assert int.from_bytes(header[4:8], "little") == 0b01, pyc


SHARED_PACKAGE = ROOT / "layers" / "shared" / "python" / "notifications"


def package_data(package: Path) -> set[str]:
    """The package's files that are not Python (the channels' templates, the ISO 4217 currency list), which its
    modules read beside themselves at run time."""
    return {
        str(path.relative_to(package))
        for path in package.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    }


def test_every_data_file_of_the_shared_package_is_in_the_layer(runtime_build: Build):
    # Given the shared package's data files
    data = package_data(SHARED_PACKAGE)
    assert "contracts/iso4217.txt" in data
    assert "channels/email/templates/en/subject.txt" in data
    for opt in {function.opt for function in runtime_build.functions.values()}:
        # Then each packaged /opt holds every one of them, byte for byte
        for name in sorted(data):
            packaged = opt / "python" / "notifications" / name
            assert packaged.read_bytes() == (SHARED_PACKAGE / name).read_bytes(), packaged


def test_installing_the_project_installs_every_data_file_of_the_shared_package():
    # Given the package-data globs pyproject.toml gives setuptools for the notifications package
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["notifications"]
    covered = {str(path.relative_to(SHARED_PACKAGE)) for glob in globs for path in SHARED_PACKAGE.glob(glob)}
    # Then they name every data file the package reads
    assert package_data(SHARED_PACKAGE) - covered == set()


def test_the_comparison_build_has_no_bytecode(runtime_build: Build):
    for function in runtime_build.functions.values():
        assert pyc_count(function.opt) > 0
        assert pyc_count(function.opt_without_pyc) == 0
        assert not list(function.task_root.rglob("*.pyc"))


def tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def dist_versions(root: Path) -> dict[str, str]:
    found = {}
    for dist_info in (root / "python").glob("*.dist-info"):
        metadata = (dist_info / "METADATA").read_text()
        name = re.search(r"^Name: (.+)$", metadata, re.M).group(1).strip()
        found[canonical(name)] = re.search(r"^Version: (.+)$", metadata, re.M).group(1).strip()
    return found


def test_the_deps_layer_builds_the_same_twice_from_the_lock(runtime_build: Build, tmp_path: Path):
    # Given the deps layer built twice from its Makefile for the Lambda target (arm64), as sam build runs it
    builds = []
    for number in (1, 2):
        artifacts = tmp_path / f"build-{number}"
        variables = [f"ARTIFACTS_DIR={artifacts}", f"PYTHON={runtime_build.python.path}"]
        subprocess.run(
            ["make", "--no-print-directory", "-C", str(ROOT / "layers/deps"), "build-DepsLayer", *variables],
            check=True,
            capture_output=True,
        )
        builds.append(artifacts)

    # Then both have the same files with the same bytes (bytecode included)
    first, second = tree(builds[0]), tree(builds[1])
    assert len(first) > 500
    assert first == second

    # And every package is at its locked version, with nothing the Lambda runtime provides
    versions = dist_versions(builds[0])
    pins = set(lock_entries(LOCK_FILE.read_text()))
    assert {(name, version) for name, version in versions.items()} <= pins
    assert {"aws-lambda-powertools", "kafka-python", "pydantic", "jinja2"} <= set(versions)
    assert not {"boto3", "botocore", "s3transfer", "urllib3"} & set(versions)


def test_lock_entries_keep_markers_and_hashes_and_drop_comments():
    text = (
        "# header\n"
        "Foo_Bar==1.2 ; python_full_version < '3.12' \\\n"
        "    --hash=sha256:aa \\\n"
        "    --hash=sha256:bb\n"
        "    # via x\n"
        "baz[extra]==3.0 \\\n"
        "    --hash=sha256:cc\n"
    )
    assert lock_entries(text) == {
        (
            "foo-bar",
            "1.2",
        ): "Foo_Bar==1.2 ; python_full_version < '3.12' \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb",
        ("baz", "3.0"): "baz[extra]==3.0 \\\n    --hash=sha256:cc",
    }


def test_the_lock_pins_every_declared_dependency_with_hashes():
    # Given the dependencies pyproject.toml declares (runtime and dev) and the lock's entries
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]
    entries = lock_entries(LOCK_FILE.read_text())
    pinned: dict[str, list[str]] = {}
    for name, version in entries:
        pinned.setdefault(name, []).append(version)

    # Then each is pinned at a version its specifier allows, and every entry carries sha256 hashes
    for requirement in declared:
        versions = pinned.get(canonical(requirement.name), [])
        assert any(requirement.specifier.contains(v, prereleases=True) for v in versions), requirement
    for key, entry in entries.items():
        assert "--hash=sha256:" in entry, key


@pytest.mark.parametrize("layer", ["deps", "shared"])
def test_make_install_and_the_layers_install_only_hash_checked(layer):
    # `make install` and the layer builds, as make would run them (dry run)
    install = subprocess.run(
        ["make", "-n", "-B", "VENV=/nonexistent", "/nonexistent/.installed"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--require-hashes -r requirements.lock" in install.stdout
    makefile = (ROOT / "layers" / layer / "Makefile").read_text()
    assert "../python.mk" in makefile and "$(precompile)" in makefile  # the layers' shared build rules
    assert "--invalidation-mode unchecked-hash" in (ROOT / "layers" / "python.mk").read_text()
    if layer == "deps":
        assert "install_locked.py --lock $(LOCK)" in makefile
