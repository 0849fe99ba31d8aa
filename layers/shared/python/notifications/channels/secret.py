"""Channel configuration kept in Secrets Manager, read through Powertools Parameters and cached.

A secret is fetched once per ``max_age`` seconds per execution environment, not once per message. When a provider
refuses a send permanently, the secret is read again at once: if it was rotated meanwhile (a new webhook URL), the
send is tried once more with the new value instead of dead-lettering the message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError
from pydantic import BaseModel, ValidationError

from notifications.errors import PermanentDeliveryError, TransientDeliveryError

S = TypeVar("S", bound=BaseModel)
R = TypeVar("R")

SECRET_MAX_AGE_SECONDS = 300


class SecretSource(Protocol):
    """Port: what the channels use of Powertools' ``SecretsProvider``."""

    def get(self, name: str, max_age: int | None = ..., transform: Any = ..., force_fetch: bool = ...) -> Any: ...


class CachedSecret(Generic[S]):
    """A JSON secret validated as ``model``. Read failures are transient: an operator fixes them, records wait."""

    def __init__(
        self, source: SecretSource, secret_id: str, model: type[S], *, max_age: int = SECRET_MAX_AGE_SECONDS
    ) -> None:
        self._source = source
        self._secret_id = secret_id
        self._model = model
        self._max_age = max_age

    def get(self, *, refresh: bool = False) -> S:
        what = self._model.__name__
        try:
            raw = self._source.get(self._secret_id, max_age=self._max_age, transform="json", force_fetch=refresh)
        except (GetParameterError, TransformParameterError) as exc:
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
