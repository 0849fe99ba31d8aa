"""The sender of a channel that POSTs each message to its caller's own HTTP destination (Slack, webhook).

The destination is the secret of the message's caller (``notifications.destinations``): at least ``{"url"}``, and
whatever else the channel's model holds (the webhook's signing keys). A send reads it through its ``CachedSecret``:
after a permanent refusal the secret is read again and, if it changed meanwhile (a rotated URL or key), the send is
tried once more. Only dev may post to loopback or private addresses (``http.allows_private_targets``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Annotated, Generic, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict

from notifications.channels import http
from notifications.channels.base import Receipt
from notifications.contracts.envelopes import ChannelMessage
from notifications.destinations import CallerDestinations, caller_destinations
from notifications.registry import Channel
from notifications.settings import SenderSettings

D = TypeVar("D", bound="Destination")


class Destination(BaseModel):
    """A destination secret's content: where to post (a channel's model adds what else it needs)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    url: Annotated[str, AfterValidator(http.check_url_form)]


class DestinationSender(ABC, Generic[D]):
    """POSTs ``body(message)`` with ``headers(...)`` to the caller's destination; ``receipt`` reads the answer."""

    channel: Channel
    destination: type[D]

    def __init__(
        self,
        settings: SenderSettings,
        targets: CallerDestinations[D],
        post: http.Post = http.post,
        *,
        allow_private: bool = False,
    ) -> None:
        self._timeout = settings.provider_timeout_seconds
        self._targets = targets
        self._post = post
        self._allow_private = allow_private

    @classmethod
    def create(cls, settings: SenderSettings, config: http.HttpChannelSettings) -> Self:
        """The sender of ``config``'s destinations, reading them through Secrets Manager."""
        targets = caller_destinations(config, cls.channel.value, cls.destination)
        return cls(settings, targets, allow_private=http.allows_private_targets(config.environment))

    def send(self, message: ChannelMessage) -> Receipt:
        target = self._targets.of(message.caller)  # the caller's own destination, never another's
        body = self.body(message)

        def deliver(destination: D) -> Receipt:
            answer = self._post(
                destination.url,
                body,
                self.headers(message, destination, body),
                timeout=self._timeout,
                provider=self.channel.value,
                allow_private=self._allow_private,
            )
            return self.receipt(answer)

        return target.call(deliver)

    @abstractmethod
    def body(self, message: ChannelMessage) -> bytes:
        """The request body for ``message``, the same for every attempt."""

    def headers(self, message: ChannelMessage, destination: D, body: bytes) -> dict[str, str]:
        """Headers of one attempt to ``destination`` (none beyond the content type by default)."""
        return {}

    def receipt(self, answer: http.HttpAnswer) -> Receipt:
        """The receipt of a 2xx answer (no provider message id by default)."""
        return Receipt(provider_message_id=None)
