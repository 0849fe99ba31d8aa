"""Each caller's own destinations: the Slack channel and the webhook endpoint of one shop, never another's.

A channel whose target is operator configuration (``ChannelSpec.address`` None: Slack, webhook) has one destination
per caller, a Secrets Manager secret named ``<DESTINATION_SECRET_PREFIX>/<channel>/<caller id>``; its content is
the channel's (Slack ``{"url"}``, webhook ``{"url", "signing_keys"}``). Operators manage them with
``notifications-destinations`` (docs/operations.md).

- A sender reads the secret of the message's caller (``CallerDestinations``): one ``CachedSecret`` per caller, read
  at most once per ``max_age`` seconds per execution environment, at most ``max_callers`` of them kept (the least
  recently used is dropped with its cached value). A message without a caller (a v1 envelope, written before
  callers existed) has no destination: it is dead-lettered with that reason, never sent to somebody's destination.
- Ingest never reads a secret's value: ``SecretsManagerDirectory`` asks DescribeSecret whether the caller's secret
  exists and is not scheduled for deletion (``DeletedDate``), and keeps the answer ``max_age`` seconds.

Ingest imports this module (``DestinationSettings``, the directory) at init: what only a sender uses, Powertools'
parameters utility and boto3 with it, is imported on first use.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, StringConstraints

from notifications.env import EnvModel
from notifications.errors import NotificationError, PermanentDeliveryError

if TYPE_CHECKING:
    from notifications.channels.secret import CachedSecret, SecretSource

S = TypeVar("S", bound=BaseModel)

# A secret name: ASCII letters, digits and /_+=.@- (CreateSecret's ``Name``, at most 512 characters:
# https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html). The prefix is a name
# without a trailing slash; the caller id adds 28 characters and the channel a few. A name ending in "-" and six
# characters could be taken for an ARN's random suffix; a caller id ends in "-" and 26
# (https://docs.aws.amazon.com/secretsmanager/latest/userguide/troubleshoot.html#ARN_secretnamehyphen).
PREFIX_PATTERN = r"^[A-Za-z0-9_+=.@-]+(/[A-Za-z0-9_+=.@-]+)*$"
DESTINATION_TTL_SECONDS = 60
NO_DESTINATION = "no_destination"
MAX_CALLERS = 256
_CALLER_ID = re.compile(r"^c-[a-z2-7]{26}$")

DestinationPrefix = Annotated[str, StringConstraints(pattern=PREFIX_PATTERN, max_length=400)]


class DestinationSettings(EnvModel):
    """Where the callers' destination secrets live (template.yaml: parameter DestinationSecretPrefix)."""

    destination_secret_prefix: DestinationPrefix


def secret_name(prefix: str, channel: str, caller: str) -> str:
    """The name of ``caller``'s destination secret for ``channel``; ValueError for anything but a caller id."""
    if not _CALLER_ID.fullmatch(caller):
        raise ValueError("a caller id is 'c-' and 26 base32 letters (python -m notifications.callers)")
    return f"{prefix}/{channel}/{caller}"


def no_destination(reason: str) -> PermanentDeliveryError:
    """The message's caller has no destination for the channel (or the message names no caller): dead-lettered."""
    return PermanentDeliveryError(reason, provider_code=NO_DESTINATION)


def caller_destinations(settings: DestinationSettings, channel: str, model: type[S]) -> CallerDestinations[S]:
    """The destinations of ``channel`` as its sender reads them: through Powertools' ``SecretsProvider`` (one per
    caller, sharing this execution environment's Secrets Manager client)."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider  # noqa: PLC0415 - senders only

    from notifications import aws  # noqa: PLC0415 - botocore on first use: ingest imports this module

    client = aws.client("secretsmanager")
    return CallerDestinations(
        settings.destination_secret_prefix, channel, model, lambda: SecretsProvider(boto3_client=client)
    )


class CallerDestinations(Generic[S]):
    """The destinations of one channel, one ``CachedSecret`` per caller (bounded, least recently used dropped).

    ``source_factory`` makes the secret source of one caller (a Powertools ``SecretsProvider`` sharing one boto3
    client): its cache goes with the caller's entry, so nothing unbounded is kept across callers."""

    def __init__(
        self,
        prefix: str,
        channel: str,
        model: type[S],
        source_factory: Callable[[], SecretSource],
        *,
        max_age: int = DESTINATION_TTL_SECONDS,
        max_callers: int = MAX_CALLERS,
    ) -> None:
        self._prefix, self._channel, self._model = prefix, channel, model
        self._source_factory = source_factory
        self._max_age, self._max_callers = max_age, max_callers
        self._secrets: OrderedDict[str, CachedSecret[S]] = OrderedDict()
        self._lock = threading.Lock()  # the senders deliver a batch's lanes in threads

    def of(self, caller: str | None) -> CachedSecret[S]:
        """The caller's destination secret; a permanent error for a message without a caller."""
        if caller is None:
            raise no_destination(
                f"no {self._channel} destination: the message names no caller (a v1 envelope, from before callers)"
            )
        with self._lock:
            secret = self._secrets.get(caller)
            if secret is None:
                # Powertools' parameters utility (and boto3 with it) loads here, in a sender, never in ingest.
                from notifications.channels.secret import CachedSecret  # noqa: PLC0415

                name = secret_name(self._prefix, self._channel, caller)
                missing = f"caller {caller} has no {self._channel} destination (secret {name})"
                secret = CachedSecret(self._source_factory(), name, self._model, max_age=self._max_age, missing=missing)
                self._secrets[caller] = secret
                while len(self._secrets) > self._max_callers:
                    self._secrets.popitem(last=False)
            else:
                self._secrets.move_to_end(caller)
            return secret


# ------------------------------------------------------------------------------------------------------- ingest


class DirectoryUnavailableError(NotificationError):
    """Secrets Manager did not say whether a destination exists; nothing may be accepted."""


class DestinationDirectory(Protocol):
    """Port: whether a caller has a destination for a channel (never its content)."""

    def has(self, caller: str, channel: str) -> bool: ...


@dataclass
class _Known:
    exists: bool
    until: float


class SecretsManagerDirectory:
    """``DestinationDirectory`` over DescribeSecret, each answer kept ``max_age`` seconds (at most ``max_entries``).

    DescribeSecret returns a secret's metadata, never its value, and ``DeletedDate`` when the secret is scheduled
    for deletion (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DescribeSecret.html): such a
    destination counts as gone, as GetSecretValue refuses it (InvalidRequestException)."""

    def __init__(
        self,
        prefix: str,
        client: Any,
        *,
        max_age: float = DESTINATION_TTL_SECONDS,
        max_entries: int = 4 * MAX_CALLERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._prefix, self._client = prefix, client
        self._max_age, self._max_entries, self._clock = max_age, max_entries, clock
        self._known: OrderedDict[tuple[str, str], _Known] = OrderedDict()
        self._lock = threading.Lock()

    def has(self, caller: str, channel: str) -> bool:
        key, now = (caller, channel), self._clock()
        with self._lock:
            known = self._known.get(key)
            if known is not None and known.until > now:
                return known.exists
        exists = self._describe(secret_name(self._prefix, channel, caller))
        with self._lock:
            self._known[key] = _Known(exists, now + self._max_age)
            self._known.move_to_end(key)
            while len(self._known) > self._max_entries:
                self._known.popitem(last=False)
        return exists

    def _describe(self, name: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - botocore on first use

        try:
            described = self._client.describe_secret(SecretId=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return False
            raise DirectoryUnavailableError(f"DescribeSecret failed: {exc.response['Error'].get('Code')}") from exc
        except BotoCoreError as exc:
            raise DirectoryUnavailableError(f"DescribeSecret failed: {type(exc).__name__}") from exc
        return "DeletedDate" not in described
