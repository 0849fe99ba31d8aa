"""Who may import whom: the product and the operator tools never depend on the local stack or the benchmarks.

``notifications`` (the shared layer), the handlers in ``functions/`` and the operator tools in ``ops/`` (run against
MSK too) are what is deployed or shipped; ``devstack`` (the local emulators), ``viewer`` (the delivery viewer),
``bench`` and ``tests`` are not. The local stack never depends on the viewer, an optional part that depends on the
stack. Read from the source with ``ast`` (every ``import`` and ``from ... import``, also inside functions), so the
contract holds whatever is installed.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {
    "notifications": ROOT / "layers" / "shared" / "python" / "notifications",
    "functions": ROOT / "functions",
    "ops": ROOT / "ops",
}
FORBIDDEN = ("devstack", "viewer", "bench", "tests")


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("part", sorted(SHIPPED))
def test_shipped_code_imports_nothing_of_the_local_stack_the_benchmarks_or_the_tests(part: str) -> None:
    offenders = {
        f"{source.relative_to(ROOT)}: {module}"
        for source in SHIPPED[part].rglob("*.py")
        for module in imported_modules(source)
        if module.split(".")[0] in FORBIDDEN
    }
    assert not offenders, sorted(offenders)


def test_the_local_stack_imports_nothing_of_the_viewer() -> None:
    # The viewer imports the stack, never the reverse: the stack loads it by name, and only when asked
    offenders = {
        f"{source.relative_to(ROOT)}: {module}"
        for source in (ROOT / "devstack").rglob("*.py")
        for module in imported_modules(source)
        if module.split(".")[0] == "viewer"
    }
    assert not offenders, sorted(offenders)
    assert "devstack.stack" in imported_modules(ROOT / "viewer" / "__init__.py")


def test_a_stack_without_the_viewer_loads_none_of_its_code() -> None:
    # What `python -m devstack` and every test stack import: no module of the viewer package
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, devstack.__main__; print(sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "shared" / "python")])},
    ).stdout
    modules = ast.literal_eval(loaded)
    assert "devstack.stack" in modules
    assert not [m for m in modules if m.split(".")[0] == "viewer"]


def test_the_contract_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    # The check itself: an import tucked into a function (as tools do to start fast) is found
    source = tmp_path / "tool.py"
    source.write_text("def main():\n    from devstack.consume import read_topic\n    import bench.common\n")
    assert imported_modules(source) == {"devstack.consume", "bench.common"}


# ------------------------------------------------------------------------------------------------ no import cycle

PACKAGE = SHIPPED["notifications"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules ``path`` imports (also under TYPE_CHECKING and inside functions): ``from a import b``
    is an import of ``a.b`` when that is a module, else of ``a``; relative imports are resolved."""
    name = module_name(path)
    base = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                anchor = base.rsplit(".", node.level - 1)[0] if node.level > 1 else base
                module = f"{anchor}.{module}" if module else anchor
            for alias in node.names:
                found.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in modules else module)
    return {module for module in found if module in modules and module != name}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: package_imports(path, set(paths)) for name, path in paths.items()}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph``, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_the_product_package_has_no_import_cycle() -> None:
    # Every import counts, also one only for type checking: a cycle there is a cycle in the design
    assert cycle(import_graph()) is None, " -> ".join(cycle(import_graph()) or [])


def test_the_registry_is_at_the_bottom_of_the_package() -> None:
    # The registry reads channel packages when asked, never by import: nothing of the package is imported by it
    graph = import_graph()
    assert graph["notifications.registry"] <= {"notifications.env"}  # EnvModel, for type checking only
    assert graph["notifications.env"] <= {"notifications.errors"}


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
