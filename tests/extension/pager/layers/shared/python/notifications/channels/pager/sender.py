"""A JSON POST to the pager service, with the bearer token kept beside its URL in Secrets Manager."""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from pydantic import BaseModel, ConfigDict, SecretStr

from notifications import aws
from notifications.channels import http
from notifications.channels.base import Receipt, render
from notifications.channels.pager import PagerSettings
from notifications.channels.secret import CachedSecret
from notifications.contracts.envelopes import ChannelMessage
from notifications.registry import Channel
from notifications.settings import SenderSettings


class PagerTarget(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    url: str
    token: SecretStr


class PagerSender:
    channel = Channel("pager")

    def __init__(
        self,
        settings: SenderSettings,
        target: CachedSecret[PagerTarget],
        post: http.Post = http.post,
        *,
        allow_private: bool = False,
    ) -> None:
        self._timeout = settings.provider_timeout_seconds
        self._target = target
        self._post = post
        self._allow_private = allow_private

    def send(self, message: ChannelMessage) -> Receipt:
        summary = render(self.channel, message.locale, "page.txt", message)
        body = json.dumps({"pager_id": message.recipient, "summary": summary}).encode()

        def deliver(target: PagerTarget) -> Receipt:
            headers = {"Authorization": f"Bearer {target.token.get_secret_value()}"}
            answer = self._post(
                target.url, body, headers, timeout=self._timeout, provider="pager", allow_private=self._allow_private
            )
            return Receipt(provider_message_id=answer.headers.get("x-page-id"))

        return self._target.call(deliver)


def create(settings: SenderSettings, config: PagerSettings) -> PagerSender:
    source = SecretsProvider(boto3_client=aws.client("secretsmanager"))
    secret = CachedSecret(source, config.pager_secret_id, PagerTarget)
    return PagerSender(settings, secret, allow_private=http.allows_private_targets(config.environment))
