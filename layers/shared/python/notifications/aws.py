"""boto3 clients, one per service and execution environment.

The endpoint comes from boto3's own configuration (``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``), so
the local stack and the tests reach moto through exactly the code path production uses.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)


@cache
def client(service: str) -> Any:
    import boto3  # noqa: PLC0415 - boto3 is a heavy import; pay it only in functions that call AWS

    return boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]
