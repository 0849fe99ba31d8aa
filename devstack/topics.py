"""The project's topics and their partition counts (template.yaml's topic custom resource creates the same)."""

from __future__ import annotations

from notifications.models import Channel

REQUESTED = "notifications.requested"
DLQ = "notifications.dlq"
PARTITIONS = 3

TOPICS: dict[str, int] = {
    REQUESTED: PARTITIONS,
    **{f"notifications.{channel.value}": PARTITIONS for channel in Channel},
    DLQ: 1,
}
