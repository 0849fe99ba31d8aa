"""How long personal data is kept: the attribute names the tables expire items by and the erasure tool reads.

- The idempotency table expires the records of shops' own idempotency keys by ``expiration`` (epoch seconds);
  ingest keeps them ``IDEMPOTENCY_TTL_SECONDS`` (24 h by default).
- The status table expires items by ``expires_at`` (epoch seconds), written with every status update; the
  notification's own item (ingest's idempotency record for its id) records the customer's id in ``customer_id``
  so that one customer's items can be found and erased (``ops/erase.py``).
- Kafka topics delete records after their ``retention.ms`` (the topics custom resource sets it; the DLQ keeps
  them longer, still bounded).

DynamoDB deletes an expired item within a few days of its expiry, not at once, and reads still return it until
then: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html
"""

from __future__ import annotations

from datetime import datetime

IDEMPOTENCY_EXPIRES_ATTRIBUTE = "expiration"
STATUS_EXPIRES_ATTRIBUTE = "expires_at"
STATUS_CUSTOMER_ATTRIBUTE = "customer_id"
# Status items are kept this long after their last update unless configured otherwise.
STATUS_TTL_SECONDS = 30 * 24 * 3600


def expires_at(now: datetime, ttl_seconds: int) -> int:
    """The TTL attribute's value (epoch seconds) for an item written at ``now`` and kept ``ttl_seconds``."""
    return int(now.timestamp()) + ttl_seconds
