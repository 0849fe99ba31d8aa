"""boto3 clients, one per service and execution environment.

The endpoint comes from boto3's own configuration (``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``), so
the local stack and the tests reach moto through exactly the code path production uses.

Every client sends one User-Agent, fixed when it is created: the SDK's name and version, Python's, the OS and the
Lambda runtime (``exec-env``), as ``Config(user_agent=...)`` sets it
(https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html). Left alone, botocore builds
the string again for every request to add the features that request used, which costs 13 to 16 % of a call's CPU
in the caller (``python -m bench.store_calls``). What the fixed string leaves out (those features) only feeds AWS's
SDK usage metrics; CloudTrail's ``userAgent`` still names the SDK and the runtime.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)
# Provider calls (SES, SNS) are attempted exactly once by botocore: a hidden retry of a request that timed out
# could deliver a second copy unseen. The sender retries itself, counting and logging every attempt.
_PROVIDER_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=5)


def _new_client(service: str, config: Config) -> Any:
    import boto3  # noqa: PLC0415 - boto3 is a heavy import; pay it only in functions that call AWS
    import botocore.session  # noqa: PLC0415

    core = botocore.session.get_session()
    session = boto3.session.Session(botocore_session=core)  # names itself Boto3 in ``core.user_agent()``
    # The client appends the session's ``user_agent_extra`` to a configured User-Agent itself.
    user_agent = core.user_agent().removesuffix(f" {core.user_agent_extra}")
    return session.client(service, config=config.merge(Config(user_agent=user_agent)))  # type: ignore[call-overload]


@cache
def client(service: str) -> Any:
    return _new_client(service, _CONFIG)


@cache
def provider_client(service: str) -> Any:
    """A client for a delivery provider: no botocore retries (see ``_PROVIDER_CONFIG``)."""
    return _new_client(service, _PROVIDER_CONFIG)


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
