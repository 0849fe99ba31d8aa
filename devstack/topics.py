"""The project's topics, their partition counts and retention (template.yaml's topic custom resource creates the same:
its ``RetentionMs``/``DlqRetentionMs`` properties hold these values, and a test keeps them equal)."""

from __future__ import annotations

from notifications.registry import Channel

REQUESTED = "notifications.requested"
DLQ = "notifications.dlq"
PARTITIONS = 3
DAY_MS = 24 * 3600 * 1000
# Records carry personal data: every topic deletes them after a bounded time; the DLQ keeps them longer (time to fix
# a cause and redrive), still bounded.
RETENTION_MS = 7 * DAY_MS
DLQ_RETENTION_MS = 28 * DAY_MS

TOPICS: dict[str, int] = {
    REQUESTED: PARTITIONS,
    **{f"notifications.{channel.value}": PARTITIONS for channel in Channel},
    DLQ: 1,
}

TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    name: {"retention.ms": str(DLQ_RETENTION_MS if name == DLQ else RETENTION_MS)} for name in TOPICS
}
