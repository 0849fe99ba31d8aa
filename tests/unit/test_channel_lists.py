"""The channel list is written in two places only: the registry (``Channel``, one member per channel package) and
template.yaml's channel mapping. Everything else derives it (``list(Channel)``, the template's expansion)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from notifications.channels.base import CHANNELS_DIR
from notifications.registry import Channel, spec

ROOT = Path(__file__).resolve().parents[2]
# Where the list may be written: the template's mapping, and generated files that are checked against the code.
ALLOWED = {"template.yaml", "docs/openapi.json"}
# An innermost bracketed group (a list, tuple, set or call), over several lines if need be.
GROUP = re.compile(r"[\[({]([^\[\](){}]*)[\])}]", re.S)


def files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [name for name in listed.splitlines() if name not in ALLOWED and (ROOT / name).is_file()]


def lists_every_channel(text: str, names: tuple[str, ...]) -> bool:
    """Whether one bracketed group, or one comma-separated word list, of ``text`` names every channel."""
    groups = [match.group(1) for match in GROUP.finditer(text)]
    groups += re.findall(r"\w+(?:\s*,\s*\w+)+", text)
    return any(all(re.search(rf"\b{name}\b", group) for name in names) for group in groups)


def test_no_file_writes_the_whole_channel_list_again():
    # Given the registry's channels
    names = tuple(channel.value for channel in Channel)
    assert len(names) >= 2

    # When every tracked file is searched for one list naming every channel
    offenders = []
    for name in files():
        try:
            text = (ROOT / name).read_text()
        except UnicodeDecodeError:
            continue
        if lists_every_channel(text, names):
            offenders.append(name)

    # Then none does
    assert offenders == []


def test_the_search_would_find_a_list():
    names = ("alpha", "beta", "gamma", "delta")
    assert lists_every_channel('CHANNELS = ["alpha", "beta", "gamma", "delta"]', names)
    assert lists_every_channel('CHANNELS = (\n    "alpha",\n    "beta",\n    "gamma",\n    "delta",\n)', names)
    assert lists_every_channel("FAULT_CHANNELS=alpha,beta,gamma,delta", names)
    assert not lists_every_channel('a(channels=["alpha", "beta"])\nb(channels=["gamma", "delta"])', names)


def test_the_registry_has_one_member_per_channel_package_and_each_declares_its_spec():
    packages = sorted(path.parent.name for path in CHANNELS_DIR.glob("*/__init__.py"))
    assert packages == sorted(channel.value for channel in Channel)
    for channel in Channel:
        assert spec(channel).settings.model_fields is not None
