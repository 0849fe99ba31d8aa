"""Bounded retention and spend, as deployed and as run locally: the template, the local stack and the code agree.

- Kafka topic ``retention.ms`` (https://kafka.apache.org/documentation/#topicconfigs_retention.ms): set by the
  topics custom resource from the template, by devstack from ``devstack.topics``; the DLQ longer, still finite.
- DynamoDB TTL on both tables (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TTL.html).
- SNS ``MonthlySpendLimit`` (https://docs.aws.amazon.com/sns/latest/api/API_SetSMSAttributes.html) and an alarm on
  ``AWS/SNS SMSMonthToDateSpentUSD`` (https://docs.aws.amazon.com/sns/latest/dg/sns-monitoring-using-cloudwatch.html).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from devstack import aws_resources, topics
from devstack.broker import KafkaBroker, ensure_topics
from devstack.template_config import expanded_template
from notifications.channels.sms import SmsSettings
from notifications.retention import IDEMPOTENCY_EXPIRES_ATTRIBUTE, STATUS_EXPIRES_ATTRIBUTE
from tests.template.conftest import function_environment, functions

TEMPLATE = expanded_template()
RESOURCES = TEMPLATE["Resources"]


def test_topic_retention_is_bounded_and_the_same_in_the_template_and_locally():
    # KafkaTopics (requested, dlq) and each channel's own <Channel>Topic all set retention.ms
    resources = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "Custom::KafkaTopics"]
    assert {p["RetentionMs"] for p in resources} == {topics.RETENTION_MS} == {7 * 86_400_000}
    props = RESOURCES["KafkaTopics"]["Properties"]
    assert props["DlqTopic"] == topics.DLQ
    assert props["DlqRetentionMs"] == topics.DLQ_RETENTION_MS == 28 * 86_400_000
    deployed = {topic for p in resources for topic in p["Topics"]}
    assert set(topics.TOPIC_CONFIGS) == set(topics.TOPICS) == deployed
    for name, configs in topics.TOPIC_CONFIGS.items():
        assert 0 < int(configs["retention.ms"]) <= topics.DLQ_RETENTION_MS, name


def test_both_tables_expire_items_by_the_attribute_the_code_writes(moto_aws):
    template_ttl = {
        name: RESOURCES[name]["Properties"]["TimeToLiveSpecification"] for name in ("StatusTable", "IdempotencyTable")
    }
    assert template_ttl == {
        "StatusTable": {"AttributeName": STATUS_EXPIRES_ATTRIBUTE, "Enabled": True},
        "IdempotencyTable": {"AttributeName": IDEMPOTENCY_EXPIRES_ATTRIBUTE, "Enabled": True},
    }
    ddb = moto_aws.client("dynamodb")
    for table, attribute in (
        (aws_resources.STATUS_TABLE, STATUS_EXPIRES_ATTRIBUTE),
        (aws_resources.IDEMPOTENCY_TABLE, IDEMPOTENCY_EXPIRES_ATTRIBUTE),
    ):
        ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", attribute), table


def test_the_sms_spend_limit_and_its_alarm_are_in_the_template():
    limit = RESOURCES["SmsSpendLimit"]
    assert limit["Type"] == "Custom::SmsSpendLimit"
    assert limit["Properties"] == {
        "ServiceToken": {"Fn::GetAtt": ["TopicsFunction", "Arn"]},
        "MonthlySpendLimitUsd": {"Ref": "SmsMonthlySpendLimitUsd"},
        # The same account-wide SMS attributes also turn on delivery status logs (provider feedback)
        "DeliveryStatusIamRoleArn": {"Fn::GetAtt": ["SmsDeliveryStatusRole", "Arn"]},
        "DeliveryStatusSuccessSamplingRate": 100,
    }
    alarm = RESOURCES["SmsSpendAlarm"]["Properties"]
    [spent] = [m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m]
    assert spent["Metric"] == {"Namespace": "AWS/SNS", "MetricName": "SMSMonthToDateSpentUSD"}
    assert spent["Stat"] == "Maximum"
    [share] = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    assert share["Expression"] == {"Fn::Sub": "spent / ${SmsMonthlySpendLimitUsd}"}
    assert alarm["Threshold"] == 0.8 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_every_function_gets_the_sms_allowlist_and_the_environment():
    default = TEMPLATE["Parameters"]["SmsAllowedCountries"]
    assert re.fullmatch(default["AllowedPattern"], default["Default"])
    assert SmsSettings.model_validate({"sms_allowed_countries": default["Default"]}).sms_allowed_countries
    for function in functions(TEMPLATE):
        env = function_environment(TEMPLATE, function)
        assert env["SMS_ALLOWED_COUNTRIES"] == {"Ref": "SmsAllowedCountries"}, function
        assert env["ENVIRONMENT"] == {"Ref": "Environment"}, function


@pytest.mark.integration
def test_the_local_broker_gets_the_same_retention(tmp_path: Path):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    bootstrap = os.environ.get("KAFKA_TEST_BOOTSTRAP_SERVERS")  # else a broker of its own
    broker = None
    if not bootstrap:
        broker = KafkaBroker(tmp_path / "kafka")
        bootstrap = broker.start(timeout=120)
    prefix = f"ret{os.getpid()}."
    wanted = {prefix + name: n for name, n in topics.TOPICS.items()}
    try:
        # Given the topics created the way the local stack creates them
        ensure_topics(bootstrap, wanted, configs={prefix + name: c for name, c in topics.TOPIC_CONFIGS.items()})

        # Then the broker reports each topic's bounded retention
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted])
        finally:
            admin.close()
        retention = {name: entries["retention.ms"]["value"] for name, entries in described["topic"].items()}
        assert retention == {prefix + name: c["retention.ms"] for name, c in topics.TOPIC_CONFIGS.items()}
    finally:
        if broker is not None:
            broker.stop()
