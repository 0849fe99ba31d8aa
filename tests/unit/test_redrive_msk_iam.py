"""The redrive tool against MSK with IAM access control: its Kafka clients are configured as MSK documents, and
kafka-python signs them, without a network.

MSK's IAM listener takes SASL_SSL on port 9098 (docs.aws.amazon.com/msk/latest/developerguide/port-info.html);
the client signs ``kafka-cluster:Connect`` with its AWS credentials and region
(docs.aws.amazon.com/msk/latest/developerguide/iam-access-control.html). kafka-python 3 implements that as the
``AWS_MSK_IAM`` SASL mechanism (dpkp/kafka-python, kafka/net/sasl/msk.py), used here as the library itself uses it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from kafka.net.sasl import get_sasl_mechanism

from notifications.kafka.producer import producer_config
from ops import redrive

BROKERS = "b-1.orders.abc123.c2.kafka.eu-central-1.amazonaws.com:9098,b-2.orders.abc123.c2.kafka.eu-central-1.amazonaws.com:9098"


@pytest.fixture
def operator_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An operator's shell: temporary credentials and a region in the environment, no AWS config files."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAOPERATOREXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "operator-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "operator-session-token")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")


def test_msk_iam_settings_give_a_sasl_ssl_consumer_that_kafka_python_signs(operator_aws, monkeypatch):
    # Given the functions' Kafka settings for MSK with IAM, as the template sets them
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", BROKERS)
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "AWS_MSK_IAM")

    # When the tool builds its DLQ consumer
    settings = redrive.kafka_settings()
    config = redrive.consumer_config(settings)

    # Then it reads over SASL_SSL with AWS_MSK_IAM, without a consumer group (nothing is committed)
    assert config == {
        "bootstrap_servers": BROKERS.split(","),
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "AWS_MSK_IAM",
        "client_id": "notifications-redrive",
        "group_id": None,
        "enable_auto_commit": False,
    }
    # And the replaying producer authenticates the same way
    producer = producer_config(settings)
    assert (producer["security_protocol"], producer["sasl_mechanism"]) == ("SASL_SSL", "AWS_MSK_IAM")

    # And kafka-python's mechanism accepts the configuration and signs kafka-cluster:Connect for the broker
    host = "b-1.orders.abc123.c2.kafka.eu-central-1.amazonaws.com"
    mechanism = get_sasl_mechanism(config["sasl_mechanism"])(host=host, **config)
    message = json.loads(mechanism.auth_bytes())
    assert message["host"] == host
    assert message["action"] == "kafka-cluster:Connect"
    assert message["x-amz-credential"].startswith("ASIAOPERATOREXAMPLE/")
    assert message["x-amz-credential"].endswith("/eu-central-1/kafka-cluster/aws4_request")
    assert message["x-amz-security-token"] == "operator-session-token"
    assert len(message["x-amz-signature"]) == 64


def test_flags_override_the_environment(operator_aws):
    # Given a shell pointed at the local broker, when the operator names the MSK cluster with flags
    env = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092", "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}
    settings = redrive.kafka_settings(
        bootstrap=BROKERS, security_protocol="SASL_SSL", sasl_mechanism="AWS_MSK_IAM", env=env
    )

    # Then the flags win
    assert settings.kafka_bootstrap_servers == BROKERS
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == ("SASL_SSL", "AWS_MSK_IAM")


@pytest.mark.parametrize(
    ("argv", "unset_region", "expected"),
    [
        (
            ["--bootstrap", BROKERS, "--sasl-mechanism", "AWS_MSK_IAM", "list"],
            False,
            "needs security protocol SASL_SSL",
        ),
        (
            ["--bootstrap", BROKERS, "--security-protocol", "SASL_SSL", "list"],
            False,
            "KAFKA_SASL_MECHANISM is required",
        ),
        (
            ["--bootstrap", BROKERS, "--security-protocol", "SASL_SSL", "--sasl-mechanism", "AWS_MSK_IAM", "list"],
            True,
            "set AWS_DEFAULT_REGION",
        ),
    ],
)
def test_an_incomplete_iam_setup_is_refused_before_connecting(
    operator_aws, monkeypatch, capsys, argv, unset_region, expected
):
    # Given an operator's command line that could not authenticate to MSK
    monkeypatch.delenv("KAFKA_SECURITY_PROTOCOL", raising=False)
    monkeypatch.delenv("KAFKA_SASL_MECHANISM", raising=False)
    if unset_region:
        monkeypatch.delenv("AWS_DEFAULT_REGION")
        monkeypatch.delenv("AWS_REGION", raising=False)

    # When it runs
    code = redrive.main(argv, out=io.StringIO())

    # Then it stops with the reason (exit 2), before any connection
    assert code == 2
    assert expected in capsys.readouterr().err
