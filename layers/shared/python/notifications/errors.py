"""Typed errors. Adapters translate library exceptions into these; one place per entry point maps them."""

from __future__ import annotations


class NotificationError(Exception):
    """Base of the project's errors."""


class ConfigurationError(NotificationError):
    """The environment does not describe a usable configuration."""


class BrokerUnavailableError(NotificationError):
    """Kafka did not acknowledge within the deadline; nothing may be reported as accepted."""


class PoisonRecordError(NotificationError):
    """A record that can never be processed (undecodable, unknown schema, invalid); it goes to the DLQ."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DeliveryError(NotificationError):
    """A provider refused or failed a send."""

    def __init__(self, reason: str, *, provider_code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.provider_code = provider_code


class TransientDeliveryError(DeliveryError):
    """Worth retrying: timeouts, throttling, 5xx, 429.

    ``throttled``: the provider asked us to slow down (429, SES ``TooManyRequestsException``, SNS ``Throttled``);
    the channel pauses and the record is retried later, it is no sign of an outage.
    ``ambiguous``: the request may have reached the provider (a timeout after it was sent); retrying may deliver
    a second copy where the provider takes no idempotency key.
    """

    def __init__(
        self,
        reason: str,
        *,
        provider_code: str | None = None,
        retry_after: float | None = None,
        throttled: bool = False,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(reason, provider_code=provider_code)
        self.retry_after = retry_after
        self.throttled = throttled
        self.ambiguous = ambiguous


class PermanentDeliveryError(DeliveryError):
    """Never worth retrying: invalid address, rejected content, 4xx."""
