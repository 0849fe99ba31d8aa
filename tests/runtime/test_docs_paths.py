"""Every file, module, make target and function the README and docs/ name exists, so their commands run as written."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from devstack.template_config import load_template

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Paths into the project's own folders; "." or a word character before them means another folder (.devstack/...).
PATH = re.compile(r"(?<![\w./-])((?:events|functions|layers|devstack|viewer|tests|bench|docs|\.ci)/[\w./-]*)")
ROOT_FILE = re.compile(r"(?<![\w./-])([\w-]+\.(?:yaml|yml|toml|lock))\b")
MODULE = re.compile(r"python -m ([\w.]+)")
MAKE_TARGET = re.compile(r"(?:^\s*|`)make ([a-z][\w-]*)", re.M)  # in code, not prose
INVOKED = re.compile(r"sam (?:local|remote) invoke (\w+)")
PLACEHOLDER = re.compile(r"[<{*]")


def mentions(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    """``(doc name, match)`` for every match outside placeholders (``events/<file>``)."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in pattern.finditer(text):
            end = match.end(1)
            if PLACEHOLDER.match(text, end):
                continue
            found.append((doc.name, match.group(1).rstrip(".")))
    return found


def test_the_docs_name_paths_at_all():
    assert len(mentions(PATH)) > 20
    assert any(path.startswith("events/") and path.endswith(".json") for _, path in mentions(PATH))


@pytest.mark.parametrize("pattern", [PATH, ROOT_FILE], ids=["folders", "root files"])
def test_every_named_path_exists(pattern):
    missing = [(doc, path) for doc, path in mentions(pattern) if not (ROOT / path).exists()]
    assert missing == []


def test_every_python_module_named_exists():
    modules = {module for _, module in mentions(MODULE)}
    assert "devstack" in modules
    assert [m for m in sorted(modules) if m != "pytest" and importlib.util.find_spec(m) is None] == []


def test_every_make_target_named_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = {target for _, target in mentions(MAKE_TARGET)}
    assert {"run", "test"} <= targets
    assert [t for t in sorted(targets) if not re.search(rf"^{re.escape(t)}:", makefile, re.M)] == []


def test_every_function_invoked_in_the_docs_is_in_the_template():
    functions = set(load_template().functions)
    invoked = {name for _, name in mentions(INVOKED)}
    assert invoked
    assert invoked - functions == set()
