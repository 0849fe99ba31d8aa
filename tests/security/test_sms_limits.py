"""SMS fraud limits (SMS pumping): only mobile numbers of allowed countries get an SMS. Ingest refuses any other
number with a 422 on ``customer.phone`` before Kafka; the sender refuses it again before SNS ``Publish``.

Numbers are classified by libphonenumber's metadata (https://github.com/google/libphonenumber): +49 900 is a
German premium-rate range, +1 900 a North American one, 11833 a German short code, +49 800 toll-free.
"""

from __future__ import annotations

import json
from typing import Any

import ingest_handler
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sns.models import sns_backends

from devstack.apigw import http_api_event, http_result
from devstack.lambda_context import LocalLambdaContext
from notifications import aws
from notifications.channels.sms import SmsSettings
from notifications.errors import ConfigurationError, PermanentDeliveryError
from notifications.registry import Channel
from notifications.runtime import ingest
from tests.channel_support import build_sender, channel_message, sender_environment
from tests.support import MemoryPublisher, sample_request

MOBILE_DE = "+4915112345678"
REFUSED = {
    "premium rate (DE 0900)": ("+499001234567", "premium-rate"),
    "premium rate (US 1-900)": ("+19005550123", "premium-rate"),
    "outside the allowlist (FR mobile)": ("+33612345678", "country SMS are not sent to (FR)"),
    "short code (DE 11833)": ("+4911833", "short code"),
    "toll free (DE 0800)": ("+498001234567", "toll-free"),
    "fixed line (DE Cologne)": ("+4922112345", "fixed-line"),
    "not in the numbering plan": ("+4915112345", "not a valid number"),
}


@pytest.fixture
def publisher(moto_aws, monkeypatch: pytest.MonkeyPatch) -> MemoryPublisher:
    fake = MemoryPublisher()
    monkeypatch.setattr(ingest, "KafkaPublisher", lambda settings, **_: fake)
    return fake


def post(phone: str, **changes: Any):
    body = sample_request(**changes)
    body["customer"]["phone"] = phone
    event = http_api_event(
        "POST", "/v1/notifications", body=json.dumps(body), headers={"content-type": "application/json"}
    )
    return http_result(ingest_handler.handler(event, LocalLambdaContext("ingest")))


def sns_sms() -> dict[str, tuple[str, str]]:
    """moto's record of direct SMS publishes."""
    return sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages


@pytest.mark.parametrize(("phone", "reason"), REFUSED.values(), ids=list(REFUSED))
@pytest.mark.parametrize("channels", [["sms"], None], ids=["sms-listed", "default-channels"])
def test_ingest_refuses_the_number_on_customer_phone_and_publishes_nothing(publisher, phone, reason, channels):
    # Given the local allowlist DE, AT, CH, US and a request whose SMS would go to a refused number
    # When it is posted (sms listed, or implied by the phone when channels are left out)
    answer = post(phone, channels=channels)

    # Then it is a 422 on customer.phone saying why, without the number, and nothing reached Kafka
    assert answer.status == 422, answer.body
    [detail] = answer.json()["error"]["details"]
    assert detail["loc"] == ["customer", "phone"]
    assert detail["type"] == "address_refused"
    assert reason in detail["msg"]
    assert phone not in answer.body.decode()
    assert publisher.records == []


def test_a_mobile_number_of_an_allowed_country_is_accepted(publisher):
    assert post(MOBILE_DE).status == 202
    assert len(publisher.records) == 1


def test_a_phone_is_not_checked_when_no_sms_is_asked_for(publisher):
    # Given a French number (outside the allowlist) on a request for email only
    answer = post("+33612345678", channels=["email"])

    # Then nothing is refused: no SMS will be sent
    assert answer.status == 202, answer.body


def test_the_allowlist_is_per_environment(publisher, monkeypatch):
    # Given an environment that sends SMS to France only
    monkeypatch.setenv("SMS_ALLOWED_COUNTRIES", "fr")

    # Then a French mobile number is accepted and a German one refused
    assert post("+33612345678").status == 202
    answer = post(MOBILE_DE)
    assert answer.status == 422
    assert "(DE)" in answer.json()["error"]["details"][0]["msg"]


@pytest.mark.parametrize("value", ["", "Germany", "DE;AT", "D"])
def test_an_environment_without_a_usable_allowlist_is_a_configuration_error(value):
    # Given no allowlist, or one that is not ISO 3166-1 alpha-2 codes: then the settings refuse to load
    env = sender_environment(Channel.SMS, SMS_ALLOWED_COUNTRIES=value)
    with pytest.raises(ConfigurationError) as caught:
        SmsSettings.from_env(env)
    assert "sms_allowed_countries" in str(caught.value)


@pytest.mark.parametrize(("phone", "reason"), REFUSED.values(), ids=list(REFUSED))
def test_the_sender_refuses_the_number_before_sns(moto_aws, phone, reason):
    # Given a channel message already queued for a refused number (e.g. accepted before the allowlist changed)
    sender = build_sender(Channel.SMS)
    publishes: list[dict[str, Any]] = []
    aws.provider_client("sns").meta.events.register(
        "provide-client-params.sns.Publish", lambda params, **_: publishes.append(params)
    )
    message = channel_message(Channel.SMS).model_copy(update={"recipient": phone})

    # When the SMS sender handles it
    with pytest.raises(PermanentDeliveryError) as caught:
        sender.send(message)

    # Then it is a permanent refusal (dead-lettered, never retried) and SNS was never called
    assert caught.value.provider_code == "refused"
    assert reason in caught.value.reason and phone not in caught.value.reason
    assert publishes == []
    assert sns_sms() == {}
