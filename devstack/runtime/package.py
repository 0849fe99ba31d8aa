"""Every function of template.yaml packaged as ``sam build`` lays it out, for this machine.

- Task root (``/var/task``): a copy of the function's CodeUri (without ``__pycache__``, as sam build copies it).
- ``/opt``: the function's layers (``Layers``, else Globals), each built by its own Makefile the way sam build
  runs it (``make build-<LayerId>`` with ``ARTIFACTS_DIR``), for this machine's platform and the runtime's Python,
  then merged in the listed order as Lambda extracts them. A second copy without any .pyc file is kept for
  comparing cold starts.

Builds are cached under ``.cache/runtime`` by the hash of everything they are made from (layer sources, the lock,
the Python), so a session builds once and an unchanged tree never rebuilds.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from devstack.runtime.toolchain import (
    CACHE_DIR,
    INSTALL_LOCKED,
    LOCK_FILE,
    RuntimePython,
    build_rie,
    cached,
    digest,
    runtime_python,
    runtime_venv,
)
from devstack.template_config import DEFAULT_TEMPLATE, FunctionSpec, TemplateError, load_template, load_yaml, resolve

_NO_BYTECODE = shutil.ignore_patterns("__pycache__", "*.pyc")


class Layer(NamedTuple):
    logical_id: str
    content_uri: Path


@dataclass(frozen=True)
class PackagedFunction:
    spec: FunctionSpec
    task_root: Path  # /var/task
    opt: Path  # /opt as built (layers precompiled)
    opt_without_pyc: Path  # the same layers with every .pyc removed

    def opt_dir(self, precompiled: bool = True) -> Path:
        return self.opt if precompiled else self.opt_without_pyc


@dataclass(frozen=True)
class Build:
    python: RuntimePython
    rie: Path
    venv: Path  # stands in for /var/runtime (awslambdaric, boto3)
    functions: Mapping[str, PackagedFunction]

    def function(self, logical_id: str) -> PackagedFunction:
        return self.functions[logical_id]


def _layer_id(value: Any, resources: Mapping[str, Any], function: str) -> str:
    match resolve(value):
        case {"Ref": str(layer_id)} if layer_id in resources:
            return layer_id
    raise TemplateError(f"{function}: a layer must be !Ref to a layer of this template, got {value!r}")


def function_layers(template: Path, function_ids: list[str]) -> dict[str, tuple[Layer, ...]]:
    """Each function's layers in order (its own ``Layers`` where the template lists them, else Globals')."""
    raw = load_yaml(template)
    resources = raw.get("Resources") or {}
    global_layers = ((raw.get("Globals") or {}).get("Function") or {}).get("Layers") or []
    found: dict[str, tuple[Layer, ...]] = {}
    for fid in function_ids:
        properties = (resources.get(fid) or {}).get("Properties") or {}
        layers = []
        for value in properties.get("Layers", global_layers):
            layer_id = _layer_id(value, resources, fid)
            resource = resources[layer_id]
            content = (resource.get("Properties") or {}).get("ContentUri")
            if (resource.get("Metadata") or {}).get("BuildMethod") != "makefile" or not isinstance(content, str):
                raise TemplateError(f"{layer_id}: only layers with a literal ContentUri built by a makefile run here")
            layers.append(Layer(layer_id, (template.parent / content).resolve()))
        found[fid] = tuple(layers)
    return found


def build_layer(layer: Layer, python: RuntimePython, cache: Path = CACHE_DIR) -> Path:
    """``make build-<LayerId>`` into a cached artifacts dir (the layer's /opt content)."""
    target = f"manylinux2014_{platform.machine()}"  # the pip platform tag of this machine, for the deps' wheels
    key = digest(layer.content_uri, LOCK_FILE, INSTALL_LOCKED, str(python.path), python.version, target)

    def make(out: Path) -> None:
        out.mkdir(parents=True)
        variables = {"ARTIFACTS_DIR": out / "artifacts", "PYTHON": python.path, "PYTHON_VERSION": python.version}
        command = ["make", "--no-print-directory", "-C", str(layer.content_uri), f"build-{layer.logical_id}"]
        command += [f"{name}={value}" for name, value in {**variables, "PLATFORM": target}.items()]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        (log := out / "build.log").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"make build-{layer.logical_id} failed (see {log}):\n{done.stderr[-3000:]}")

    return cached(cache / "layers" / f"{layer.logical_id}-{key}", make) / "artifacts"


def _merged(name: str, sources: list[Path], cache: Path, *, without_pyc: bool = False) -> Path:
    """One /opt from several layer artifact dirs, later layers over earlier ones (as Lambda extracts them)."""

    def make(out: Path) -> None:
        for source in sources:
            shutil.copytree(source, out / "opt", dirs_exist_ok=True, ignore=_NO_BYTECODE if without_pyc else None)

    return cached(cache / "opt" / f"{name}-{'nopyc' if without_pyc else 'built'}", make) / "opt"


def _task_root(code_uri: Path, cache: Path) -> Path:
    out = cache / "task" / f"{code_uri.name}-{digest(code_uri)}"
    return cached(out, lambda out: shutil.copytree(code_uri, out / "task", ignore=_NO_BYTECODE)) / "task"


def build(template: Path = DEFAULT_TEMPLATE, cache: Path = CACHE_DIR, progress: Callable[[str], None] = print) -> Build:
    """The emulator, the runtime and every function of the template, packaged (cached after the first call)."""
    python = runtime_python()
    if python.warning:
        progress(python.warning)
    progress(f"runtime: Python {python.version} ({python.path})")
    rie = build_rie(cache)
    venv = runtime_venv(python, cache)
    specs = load_template(template).functions
    layers = function_layers(template, list(specs))
    built: dict[Layer, Path] = {}
    functions = {}
    for fid, spec in specs.items():
        for layer in layers[fid]:
            if layer not in built:
                built[layer] = build_layer(layer, python, cache)
                progress(f"layer: {layer.logical_id} built in {built[layer]}")
        sources = [built[layer] for layer in layers[fid]]
        name = "-".join(path.parent.name for path in sources) or "empty"
        functions[fid] = PackagedFunction(
            spec=spec,
            task_root=_task_root(spec.code_uri, cache),
            opt=_merged(name, sources, cache),
            opt_without_pyc=_merged(name, sources, cache, without_pyc=True),
        )
    return Build(python=python, rie=rie, venv=venv, functions=functions)


def pyc_count(opt: Path) -> int:
    return sum(1 for _ in opt.rglob("*.pyc")) if opt.is_dir() else 0
