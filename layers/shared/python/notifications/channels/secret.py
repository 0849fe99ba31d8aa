"""Channel configuration kept in Secrets Manager, read through Powertools Parameters and cached.

A secret is fetched once per ``max_age`` seconds per execution environment, not once per message. When a provider
refuses a send permanently, the secret is read again at once: if it was rotated meanwhile (a new webhook URL), the
send is tried once more with the new value instead of dead-lettering the message.

A secret that does not exist, or is scheduled for deletion, is a permanent error when the secret names a
destination that may be absent (``missing``: a caller without one, ``notifications.destinations``); GetSecretValue
answers ResourceNotFoundException and InvalidRequestException for them
(https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError
from pydantic import BaseModel, ValidationError

from notifications.errors import PermanentDeliveryError, TransientDeliveryError

S = TypeVar("S", bound=BaseModel)
R = TypeVar("R")

_MISSING_CODES = frozenset({"ResourceNotFoundException", "InvalidRequestException"})

SECRET_MAX_AGE_SECONDS = 300


class SecretSource(Protocol):
    """Port: what the channels use of Powertools' ``SecretsProvider``."""

    def get(self, name: str, max_age: int | None = ..., transform: Any = ..., force_fetch: bool = ...) -> Any: ...


class CachedSecret(Generic[S]):
    """A JSON secret validated as ``model``. Read failures are transient: an operator fixes them, records wait."""

    def __init__(
        self,
        source: SecretSource,
        secret_id: str,
        model: type[S],
        *,
        max_age: int = SECRET_MAX_AGE_SECONDS,
        missing: str | None = None,
    ) -> None:
        self._source = source
        self._secret_id = secret_id
        self._model = model
        self._max_age = max_age
        self._missing = missing

    def get(self, *, refresh: bool = False) -> S:
        what = self._model.__name__
        try:
            raw = self._source.get(self._secret_id, max_age=self._max_age, transform="json", force_fetch=refresh)
        except (GetParameterError, TransformParameterError) as exc:
            if self._missing is not None and _missing_secret(exc):
                raise PermanentDeliveryError(self._missing, provider_code="no_destination") from exc
            raise TransientDeliveryError(
                f"{what} secret unreadable: {type(exc).__name__}", provider_code="secret"
            ) from exc
        try:
            return self._model.model_validate(raw)
        except ValidationError as exc:
            # Field names only: the message must never carry the secret's value.
            fields = ", ".join(".".join(map(str, e["loc"])) or "(root)" for e in exc.errors(include_input=False))
            raise TransientDeliveryError(f"{what} secret invalid: {fields}", provider_code="secret") from exc

    def call(self, send: Callable[[S], R]) -> R:
        """``send(secret)``; after a permanent refusal once more, only if the secret has changed meanwhile."""
        current = self.get()
        try:
            return send(current)
        except PermanentDeliveryError:
            fresh = self.get(refresh=True)
            if fresh == current:
                raise
            return send(fresh)


def _missing_secret(exc: Exception) -> bool:
    """Whether Powertools' error stands for a secret that is not there. Powertools raises ``GetParameterError``
    inside its ``except`` of the boto3 error, so that error is the implicit ``__context__``."""
    from botocore.exceptions import ClientError  # noqa: PLC0415 - botocore is loaded already by the provider

    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") in _MISSING_CODES
