"""Local stand-ins of channel providers the local stack has none of: ``devstack/standins/<channel>.py``, optional.

The local stack already stands in for SES (``devstack.providers``), SNS and Secrets Manager (moto) and HTTP
endpoints (``devstack.receivers``). A channel whose sender needs more locally (a secret, a platform application,
an endpoint) adds a module named after it with::

    def prepare(local: Local) -> dict[str, str]:
        ...  # create what the sender needs: local.aws.client("secretsmanager"), local.receiver_url("/<channel>")
        return {"<X>_SECRET_ID": "..."}  # the sender's environment locally, in place of the template's values

The stack calls it once the local AWS and receivers run and before the functions start, and gives the returned
variables to that channel's sender function (also in ``env-vars.json`` for ``sam local invoke``).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from notifications.registry import Channel


@dataclass(frozen=True)
class Local:
    """What a stand-in may use: the local AWS (``aws.client(service)``, moto and the local DynamoDB) and the
    local HTTP receiver (``receiver_url(path)``: every POST recorded, shown by the viewer)."""

    aws: Any
    receiver_url: Callable[[str], str]


def prepare_all(local: Local) -> dict[Channel, dict[str, str]]:
    """Each channel's stand-in prepared: its sender's local environment, by channel (channels without one: none)."""
    prepared: dict[Channel, dict[str, str]] = {}
    for channel in Channel:
        name = f"{__name__}.{channel.value}"
        if importlib.util.find_spec(name) is not None:
            prepared[channel] = dict(importlib.import_module(name).prepare(local))
    return prepared
