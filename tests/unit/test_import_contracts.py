"""Who may import whom: the product and the operator tools never depend on the local stack or the benchmarks.

``notifications`` (the shared layer), the handlers in ``functions/`` and the operator tools in ``ops/`` (run against
MSK too) are what is deployed or shipped; ``devstack`` (the local emulators), ``bench`` and ``tests`` are not. Read
from the source with ``ast`` (every ``import`` and ``from ... import``, also inside functions), so the contract
holds whatever is installed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {
    "notifications": ROOT / "layers" / "shared" / "python" / "notifications",
    "functions": ROOT / "functions",
    "ops": ROOT / "ops",
}
FORBIDDEN = ("devstack", "bench", "tests")


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


def test_the_contract_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    # The check itself: an import tucked into a function (as tools do to start fast) is found
    source = tmp_path / "tool.py"
    source.write_text("def main():\n    from devstack.consume import read_topic\n    import bench.common\n")
    assert imported_modules(source) == {"devstack.consume", "bench.common"}
