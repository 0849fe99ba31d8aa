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


def provider_error(exc: Exception, service: str, *, permanent: frozenset[str], throttled: frozenset[str]) -> Exception:
    """The delivery error a failed provider call (``ClientError`` or ``BotoCoreError``) stands for.

    An error code in ``permanent`` answered below HTTP 500 is permanent; everything else is transient, marked
    ``throttled`` for the provider's "slow down" codes and ``ambiguous`` when the request may have arrived.
    """
    from botocore.exceptions import ClientError  # noqa: PLC0415

    from notifications.errors import PermanentDeliveryError, TransientDeliveryError  # noqa: PLC0415

    if not isinstance(exc, ClientError):
        return TransientDeliveryError(f"{service} unreachable: {type(exc).__name__}", ambiguous=may_have_arrived(exc))
    code = exc.response.get("Error", {}).get("Code", "Unknown")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in permanent and status < 500:
        return PermanentDeliveryError(f"{service} rejected the message: {code}", provider_code=code)
    return TransientDeliveryError(f"{service} call failed: {code}", provider_code=code, throttled=code in throttled)


def may_have_arrived(exc: Exception) -> bool:
    """Whether a failed call may still have reached the service: a read timeout or a connection lost mid-call."""
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError  # noqa: PLC0415

    return isinstance(exc, ReadTimeoutError | ConnectionClosedError)
