"""Local stand-ins of channel providers the local stack has none of: ``devstack/standins/<channel>.py``, optional.

Such a module defines ``prepare(local: Local) -> Prepared``: it creates what its channel's sender needs locally
(``local.aws.client(...)``, ``local.receiver_url("/<channel>")``) and answers the sender's local environment and
the template parameters its role names. The stack calls it before the functions start (docs/adding-a-channel.md).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from notifications.registry import Channel


@dataclass(frozen=True)
class Local:
    """What a stand-in may use: the local AWS (``aws.client(service)``, moto and the local DynamoDB) and the
    local HTTP receiver (``receiver_url(path)``: every POST recorded, shown by the viewer)."""

    aws: Any
    receiver_url: Callable[[str], str]


@dataclass(frozen=True)
class Prepared:
    # The channel's sender's environment locally, in place of what the template gives it in AWS.
    environment: Mapping[str, str]
    # Template parameters as the local stack deploys the template (the local ARN of a secret the stand-in made).
    parameters: Mapping[str, str] = field(default_factory=dict)


def prepare_all(local: Local) -> dict[Channel, Prepared]:
    """Each channel's stand-in prepared, by channel (a channel without one has none)."""
    prepared: dict[Channel, Prepared] = {}
    for channel in Channel:
        name = f"{__name__}.{channel.value}"
        if importlib.util.find_spec(name) is not None:
            result = importlib.import_module(name).prepare(local)
            if not isinstance(result, Prepared):
                raise TypeError(f"{name}.prepare must return a devstack.standins.Prepared")
            prepared[channel] = result
    return prepared


def parameters(prepared: Mapping[Channel, Prepared]) -> dict[str, str]:
    """Every stand-in's template parameters together."""
    return {name: value for each in prepared.values() for name, value in each.parameters.items()}
