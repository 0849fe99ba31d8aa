"""Kafka settings: PLAINTEXT locally, IAM on MSK, SCRAM on a self-managed cluster."""

from __future__ import annotations

import json

import pytest

from notifications.errors import ConfigurationError
from notifications.kafka.producer import producer_config
from notifications.settings import KafkaSettings


def test_msk_iam_settings_give_sasl_ssl_with_aws_msk_iam():
    settings = KafkaSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "b-1:9098,b-2:9098",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "AWS_MSK_IAM",
        }
    )
    config = producer_config(settings)
    assert config["bootstrap_servers"] == ["b-1:9098", "b-2:9098"]
    assert (config["security_protocol"], config["sasl_mechanism"]) == ("SASL_SSL", "AWS_MSK_IAM")
    assert config["acks"] == "all"
    assert config["enable_idempotence"] is True


def test_sasl_ssl_without_a_mechanism_is_rejected():
    with pytest.raises(ConfigurationError, match="KAFKA_SASL_MECHANISM"):
        KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "b:9096", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})


def test_scram_needs_its_secret():
    with pytest.raises(ConfigurationError, match="KAFKA_SASL_SECRET_ARN"):
        KafkaSettings.from_env(
            {
                "KAFKA_BOOTSTRAP_SERVERS": "b:9096",
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            }
        )


def test_scram_credentials_come_from_secrets_manager(moto_aws):
    arn = moto_aws.client("secretsmanager").create_secret(
        Name="AmazonMSK_kafka", SecretString=json.dumps({"username": "svc", "password": "pw"})
    )["ARN"]
    settings = KafkaSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "b:9096",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_SECRET_ARN": arn,
        }
    )
    config = producer_config(settings)
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("svc", "pw")
