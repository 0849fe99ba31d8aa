"""The AWS side of the local stack for packaged functions: a moto server and the Slack/webhook receivers.

The functions run in other processes (the emulator's), so moto runs as a server on 127.0.0.1; it runs in the
calling process, so a test can read what SES and SNS received from moto's backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from devstack import aws_resources
from devstack.receivers import DeliveryReceiver
from devstack.runtime.emulator import HOST
from devstack.stack import EndpointSession

# Each local shop's webhook path verified with that shop's own key.
PATH_KEYS = {f"/webhook/{shop}": [key] for shop, key in aws_resources.LOCAL_SHOPS.items()}


@dataclass(frozen=True)
class Services:
    aws_endpoint: str
    slack: DeliveryReceiver
    webhook: DeliveryReceiver
    push_endpoints: list[str]  # the demo devices' platform endpoints (the push sample names the first)


@contextmanager
def aws_services() -> Iterator[Services]:
    """A moto server with the project's resources, their secrets pointing at two local receivers, and the push
    endpoints of the local stack."""
    with (
        aws_resources.moto_server(HOST) as endpoint,
        DeliveryReceiver() as slack,
        DeliveryReceiver(path_keys=PATH_KEYS) as webhook,
    ):
        aws_resources.create_all(
            EndpointSession(endpoint),
            aws_resources.Endpoints(slack_base_url=slack.url("/slack"), webhook_base_url=webhook.url("/webhook")),
        )
        push = aws_resources.create_push_endpoints(
            EndpointSession(endpoint).client("sns"), aws_resources.seed_moto_server(endpoint)
        )
        yield Services(aws_endpoint=endpoint, slack=slack, webhook=webhook, push_endpoints=push)
