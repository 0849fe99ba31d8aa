"""HTTPS POST for the HTTP channels (Slack, webhook) and the one place an HTTP answer becomes a delivery error.

- 2xx is delivered.
- 408, 425, 429 and 5xx are transient (``Retry-After``, seconds or an HTTP date, is passed on as ``retry_after``);
  so are network errors and timeouts.
- Every other status is permanent (400, 401, 403, 404, 410, 413, 422, ...), redirects included: a POST is never
  followed to another URL, the configured URL must be the final one.

Targets are https to a public address. Loopback, private, link-local and other non-global addresses (and plain
http, which only they may use) are allowed in the ``dev`` environment only (the local stack, a test box): in
staging and prod a URL naming such an address, or a host name resolving to one, is refused before anything is sent.
An IPv6 address that embeds an IPv4 address is judged by the IPv4 address (NAT64 ``64:ff9b::/96``, RFC 6052;
IPv4-mapped ``::ffff:0:0/96`` and IPv4-compatible ``::/96``, RFC 4291; 6to4 ``2002::/16``, RFC 3056); the NAT64
local-use prefix ``64:ff9b:1::/48`` (RFC 8215), where the IPv4 address sits where the operator chose, is never public.
The check resolves the name once more than the connection does; a DNS answer that changes in between (rebinding)
is not caught, which is why the URLs themselves are operator configuration in Secrets Manager, never caller input.

Plain ``urllib.request`` with a timeout: no extra dependency in the Lambda layer.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import SplitResult, urlsplit

from notifications.destinations import DestinationSettings
from notifications.errors import PermanentDeliveryError, TransientDeliveryError

_MAX_ANSWER_BYTES = 64 * 1024
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})
_TRANSIENT_4XX = frozenset({408, 425, 429})
# Short machine-readable answers such as Slack's ``channel_not_found`` are kept in the reason; anything else is not.
_ERROR_TOKEN = re.compile(rb"^[A-Za-z0-9_.-]{1,64}$")
USER_AGENT = "purchase-notifications/1"


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


# The deployment environment (template parameter Environment); only dev may deliver to non-public addresses.
DeployEnvironment = Literal["dev", "staging", "prod"]


class HttpChannelSettings(DestinationSettings):
    """The settings of a channel posting to each caller's own destination (Slack, webhook)."""

    # Only dev may post to loopback or private addresses (template parameter Environment).
    environment: DeployEnvironment = "prod"


def allows_private_targets(environment: DeployEnvironment) -> bool:
    return environment == "dev"


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _is_global(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a delivery may reach ``address``: an IPv6 address that carries an IPv4 address goes where that does."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL_USE:
            return False
        if address in _NAT64 or address in _IPV4_COMPATIBLE:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF).is_global
        if (embedded := address.ipv4_mapped or address.sixtofour) is not None:
            return embedded.is_global
    return address.is_global


def _is_private_address(address: str) -> bool:
    try:
        return not _is_global(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return False


def _is_private_host(host: str) -> bool:
    """A literal address that is not global (loopback, RFC 1918, link-local, ...) or a name of this machine."""
    host = host.lower().rstrip(".")
    return host in _LOCAL_NAMES or host.endswith(".localhost") or _is_private_address(host)


def _parts(url: str) -> SplitResult:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an https URL")
    if parts.scheme == "http" and not _is_private_host(parts.hostname):
        raise ValueError("must be an https URL (plain http only to loopback or private addresses, in dev)")
    return parts


def check_url_form(url: str) -> str:
    """``url`` if some environment may deliver to it (a secret's shape); ``check_url`` decides for this one."""
    _parts(url)
    return url


def check_url(url: str, *, allow_private: bool = False) -> str:
    """``url`` if it may receive deliveries: https to a public host; loopback/private hosts (and http to them) only
    when ``allow_private``. Names are not resolved here (see ``post``)."""
    parts = _parts(url)
    if not allow_private and _is_private_host(parts.hostname or ""):
        raise ValueError("loopback and private addresses are allowed in the dev environment only")
    return url


def _resolves_to_private(host: str, port: int) -> bool:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        return False  # unresolvable: the connection attempt fails and says so
    return any(_is_private_address(str(info[4][0])) for info in infos)


def parse_retry_after(value: str | None, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit also accepts "²", which float() refuses
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())


def raise_for_status(provider: str, answer: HttpAnswer) -> None:
    """Nothing for 2xx; otherwise the typed delivery error for ``answer.status``."""
    status = answer.status
    if 200 <= status < 300:
        return
    token = answer.body.strip()
    detail = f" ({token.decode()})" if _ERROR_TOKEN.match(token) else ""
    reason = f"{provider} answered HTTP {status}{detail}"
    code = f"HTTP {status}"
    if status in _TRANSIENT_4XX or status >= 500:
        raise TransientDeliveryError(
            reason,
            provider_code=code,
            retry_after=parse_retry_after(answer.headers.get("retry-after")),
            throttled=status == 429,
        )
    raise PermanentDeliveryError(reason, provider_code=code)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


def _headers(message: Message) -> dict[str, str]:
    return {name.lower(): value for name, value in message.items()}


def post(
    url: str, body: bytes, headers: Mapping[str, str], *, timeout: float, provider: str, allow_private: bool = False
) -> HttpAnswer:
    """POST ``body`` as JSON; the answer when it is 2xx, else ``TransientDeliveryError``/``PermanentDeliveryError``.

    A refused URL is transient: an operator fixes the secret or the environment, records wait."""
    try:
        check_url(url, allow_private=allow_private)
        parts = urlsplit(url)
        if not allow_private and _resolves_to_private(parts.hostname or "", parts.port or 443):
            raise ValueError("the host name resolves to a loopback or private address (allowed in dev only)")
    except ValueError as exc:
        raise TransientDeliveryError(f"{provider} URL refused: {exc}", provider_code="config") from exc
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above (https, or http in dev)
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT, **headers},
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            answer = HttpAnswer(response.status, _headers(response.headers), response.read(_MAX_ANSWER_BYTES))
    except urllib.error.HTTPError as exc:
        with exc:
            answer = HttpAnswer(exc.code, _headers(exc.headers), exc.read(_MAX_ANSWER_BYTES))
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, refused and reset connections
        # A timeout or a dropped connection may come after the receiver got the request; a refused one may not.
        refused = isinstance(getattr(exc, "reason", exc), ConnectionRefusedError)
        raise TransientDeliveryError(
            f"{provider} unreachable: {type(exc).__name__}", provider_code="network", ambiguous=not refused
        ) from exc
    raise_for_status(provider, answer)
    return answer


Post = Callable[..., HttpAnswer]
"""The shape of ``post``, so a channel can be handed a fake in unit tests."""
