"""boto3 clients, one per service and execution environment.

The endpoint comes from boto3's own configuration (``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``), so
the local stack and the tests reach moto through exactly the code path production uses.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)
# Provider calls (SES, SNS) are attempted exactly once by botocore: a hidden retry of a request that timed out
# could deliver a second copy unseen. The sender retries itself, counting and logging every attempt.
_PROVIDER_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=5)


@cache
def client(service: str) -> Any:
    import boto3  # noqa: PLC0415 - boto3 is a heavy import; pay it only in functions that call AWS

    return boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]


@cache
def provider_client(service: str) -> Any:
    """A client for a delivery provider: no botocore retries (see ``_PROVIDER_CONFIG``)."""
    import boto3  # noqa: PLC0415

    return boto3.session.Session().client(service, config=_PROVIDER_CONFIG)  # type: ignore[call-overload]


def may_have_arrived(exc: Exception) -> bool:
    """Whether a failed call may still have reached the service: a read timeout or a connection lost mid-call."""
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError  # noqa: PLC0415

    return isinstance(exc, ReadTimeoutError | ConnectionClosedError)
