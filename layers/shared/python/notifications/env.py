"""Settings read from the environment: the base every role's and every channel's settings model builds on.

At the bottom of the package (it imports only ``errors``), so a channel package can declare its settings without
importing the roles' settings or the contracts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Self

from pydantic import BaseModel, ConfigDict, ValidationError

from notifications.errors import ConfigurationError


class EnvModel(BaseModel):
    """Settings read from the environment: each field is the upper-case variable of the same name."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        source = os.environ if env is None else env
        # Field names are the upper-case environment variable names.
        values = {name: source[name.upper()] for name in cls.model_fields if source.get(name.upper())}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid {cls.__name__}: {exc}") from exc
