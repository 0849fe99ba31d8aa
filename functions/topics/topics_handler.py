"""CloudFormation custom resources: the notification topics on the Kafka cluster, and the account's SMS spend limit.

``Custom::KafkaTopics`` creates the topics, idempotently (below). ``Custom::SmsSpendLimit`` sets SNS's
``MonthlySpendLimit`` (USD) for the account and region with ``SetSMSAttributes``, which no CloudFormation resource
property covers (https://docs.aws.amazon.com/sns/latest/api/API_SetSMSAttributes.html). SNS stops sending SMS within
minutes once the month's spend would pass it; the value cannot exceed the account's SMS spend quota (1 USD until a
quota increase). Delete leaves the account setting as it is: it is the account's, and lowering it is the safe side.

Create/Update: every topic in ``Topics`` that is missing is created with ``Partitions`` partitions, replication
factor ``ReplicationFactor`` and ``min.insync.replicas`` = ``MinInsyncReplicas``; an existing topic with fewer
partitions than requested is grown (Kafka cannot shrink one, so a larger count is left alone and logged).
Delete: a no-op. Topics hold accepted notifications and dead letters; removing the stack must never delete them.

Retention: the records carry personal data (names, email addresses, phone numbers), so every topic gets an explicit,
finite ``retention.ms``: ``RetentionMs`` (7 days by default), the dead-letter topic ``DlqTopic`` ``DlqRetentionMs``
(28 days by default: time for an operator to fix a cause and redrive, still bounded). Set when a topic is created
and on every Create/Update for the existing ones (IncrementalAlterConfigs, so other topic settings are kept). An
unbounded value (-1) or a DLQ shorter than the other topics is refused.
https://kafka.apache.org/documentation/#topicconfigs_retention.ms

The answer goes to CloudFormation through the pre-signed ``ResponseURL`` (stdlib only, no cfnresponse module),
always before the function times out: the Kafka work runs against a deadline derived from the remaining time.
Not crhelper: it answers FAILED from a timer only 0.5 s before the timeout while the Kafka call keeps running, and
creates Lambda, EventBridge and CloudWatch Logs clients on every cold start for polling this resource never uses.

Authentication: ``SaslMechanism`` AWS_MSK_IAM (kafka-python 3 signs with botocore's default credentials, i.e. the
function's role) or SCRAM-SHA-512 with ``SaslSecretArn`` pointing at a Secrets Manager secret
``{"username": ..., "password": ...}`` (the same secret a self-managed Kafka event-source mapping uses).
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)

# Answer CloudFormation this long before the function's own timeout, whatever the Kafka calls are doing.
RESPONSE_MARGIN_MS = 10_000
TOPIC_ALREADY_EXISTS = 36
DAY_MS = 24 * 3600 * 1000
SMS_SPEND_LIMIT = "Custom::SmsSpendLimit"
DEFAULT_RETENTION_MS = 7 * DAY_MS
DEFAULT_DLQ_RETENTION_MS = 28 * DAY_MS


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return [str(item).strip() for item in value or [] if str(item).strip()]


def _scram_credentials(secret_arn: str) -> tuple[str, str]:
    import boto3  # noqa: PLC0415 - provided by the Lambda runtime; only needed for SCRAM

    secret = boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    data = json.loads(secret["SecretString"])
    return data["username"], data["password"]


def admin_config(props: Mapping[str, Any], timeout_ms: int) -> dict[str, Any]:
    """KafkaAdminClient keyword arguments from the resource properties."""
    protocol = str(props.get("SecurityProtocol") or "SASL_SSL")
    mechanism = str(props.get("SaslMechanism") or "")
    config: dict[str, Any] = {
        "bootstrap_servers": _as_list(props["BootstrapServers"]),
        "client_id": "notifications-topics",
        "security_protocol": protocol,
        "request_timeout_ms": timeout_ms,
        "bootstrap_timeout_ms": timeout_ms,
    }
    if protocol.startswith("SASL_") and mechanism:
        config["sasl_mechanism"] = mechanism
        if mechanism.startswith("SCRAM-"):
            username, password = _scram_credentials(str(props["SaslSecretArn"]))
            config["sasl_plain_username"] = username
            config["sasl_plain_password"] = password
    return config


def retention_ms(props: Mapping[str, Any], topics: list[str]) -> dict[str, int]:
    """Each topic's ``retention.ms``: ``RetentionMs``, the DLQ's ``DlqRetentionMs``; both finite, DLQ not shorter."""
    default = int(props.get("RetentionMs", DEFAULT_RETENTION_MS))
    dlq_topic = str(props.get("DlqTopic") or "notifications.dlq")
    dlq = int(props.get("DlqRetentionMs", DEFAULT_DLQ_RETENTION_MS))
    if default <= 0 or dlq <= 0:
        raise ValueError("RetentionMs and DlqRetentionMs must be positive: retention is bounded (no -1)")
    if dlq < default:
        raise ValueError(f"DlqRetentionMs={dlq} must not be shorter than RetentionMs={default}")
    return {topic: dlq if topic == dlq_topic else default for topic in topics}


def _set_retention(admin: Any, retention: Mapping[str, int]) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType  # noqa: PLC0415 - from the dependencies layer

    resources = [
        ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": str(value)})
        for topic, value in retention.items()
    ]
    result = admin.alter_configs(resources)
    failed = {name: outcome for name, outcome in result.get("topic", {}).items() if outcome != "OK"}
    if failed or set(result.get("topic", {})) != set(retention):
        raise RuntimeError(f"could not set retention.ms: {failed or result}")


def ensure_topics(admin: Any, props: Mapping[str, Any], timeout_ms: int) -> dict[str, str]:
    """Create the missing topics, grow under-partitioned ones, bound every topic's retention. Returns ``Data``."""
    topics = _as_list(props["Topics"])
    partitions = int(props.get("Partitions", 3))
    replication_factor = int(props.get("ReplicationFactor", 3))
    min_insync = int(props.get("MinInsyncReplicas", 2))
    if not topics:
        raise ValueError("Topics is empty")
    if not 1 <= min_insync <= replication_factor:
        raise ValueError(f"MinInsyncReplicas={min_insync} must be between 1 and ReplicationFactor={replication_factor}")
    retention = retention_ms(props, topics)

    existing = set(admin.list_topics())
    missing = [topic for topic in topics if topic not in existing]
    created: list[str] = []
    if missing:
        spec = {
            topic: {
                "num_partitions": partitions,
                "replication_factor": replication_factor,
                "configs": {"min.insync.replicas": str(min_insync), "retention.ms": str(retention[topic])},
            }
            for topic in missing
        }
        result = admin.create_topics(spec, timeout_ms=timeout_ms, raise_errors=False)
        errors = []
        for item in result.get("topics", []):
            code = item.get("error_code", 0)
            if code == 0:
                created.append(item["name"])
            elif code != TOPIC_ALREADY_EXISTS:  # created concurrently: fine
                errors.append(f"{item['name']}: error {code} {item.get('error_message') or ''}".strip())
        if errors:
            raise RuntimeError("could not create topics: " + "; ".join(errors))
        LOG.info("created topics %s", created)

    grown: list[str] = []
    present = [topic for topic in topics if topic in existing]
    if present:
        grow = {}
        for info in admin.describe_topics(present):
            count = len(info.get("partitions") or [])
            if count < partitions:
                grow[info["name"]] = partitions
            elif count > partitions:
                LOG.warning(
                    "topic %s has %d partitions (> %d requested); Kafka cannot shrink it",
                    info["name"],
                    count,
                    partitions,
                )
        if grow:
            admin.create_partitions(grow, timeout_ms=timeout_ms)
            grown = sorted(grow)
            LOG.info("grew partitions of %s to %d", grown, partitions)
        _set_retention(admin, {topic: retention[topic] for topic in present})
        LOG.info("retention.ms of %s set", present)

    return {
        "Topics": ",".join(topics),
        "Created": ",".join(created),
        "Grown": ",".join(grown),
        "RetentionMs": ",".join(f"{topic}={retention[topic]}" for topic in topics),
    }


def set_sms_spend_limit(sns: Any, props: Mapping[str, Any]) -> dict[str, str]:
    """SNS ``MonthlySpendLimit`` = ``MonthlySpendLimitUsd`` (a whole number of USD). Returns CloudFormation ``Data``."""
    limit = str(props.get("MonthlySpendLimitUsd", "")).strip()
    if not limit.isdigit():
        raise ValueError(f"MonthlySpendLimitUsd must be a whole number of USD, got {limit!r}")
    attributes = {"MonthlySpendLimit": limit}
    # SMS delivery status logs (the feedback function reads them): the role SNS writes them with, and the share of
    # successful deliveries logged (failures are always logged).
    # https://docs.aws.amazon.com/sns/latest/api/API_SetSMSAttributes.html
    role = str(props.get("DeliveryStatusIamRoleArn", "")).strip()
    if role:
        attributes["DeliveryStatusIAMRole"] = role
        attributes["DeliveryStatusSuccessSamplingRate"] = str(props.get("DeliveryStatusSuccessSamplingRate", "100"))
    sns.set_sms_attributes(attributes=attributes)
    LOG.info("SNS SMS attributes set: %s", ", ".join(sorted(attributes)))
    return {"MonthlySpendLimit": limit}


def _default_sns_factory() -> Any:
    import boto3  # noqa: PLC0415 - provided by the Lambda runtime; only needed for the SMS spend limit

    return boto3.client("sns")


def _default_admin_factory(**config: Any) -> Any:
    from kafka import KafkaAdminClient  # noqa: PLC0415 - from the dependencies layer

    return KafkaAdminClient(**config)


def send_response(
    event: Mapping[str, Any], status: str, physical_id: str, data: Mapping[str, str] | None = None, reason: str = ""
) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": (reason or f"See CloudWatch Logs, stream {physical_id}")[:3000],
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "NoEcho": False,
            "Data": dict(data or {}),
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - CloudFormation's pre-signed https URL
        event["ResponseURL"],
        data=body,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
        LOG.info("CloudFormation response %s: HTTP %s", status, response.status)


def handler(
    event: dict[str, Any],
    context: Any,
    admin_factory: Callable[..., Any] = _default_admin_factory,
    sns_factory: Callable[[], Any] = _default_sns_factory,
) -> None:
    request_type = event["RequestType"]
    spend_limit = event.get("ResourceType") == SMS_SPEND_LIMIT
    suffix = "sms-spend-limit" if spend_limit else "kafka-topics"
    physical_id = event.get("PhysicalResourceId") or f"{event['LogicalResourceId']}-{suffix}"
    props = event.get("ResourceProperties", {})
    LOG.info("%s %s topics=%s", request_type, physical_id, props.get("Topics"))

    if request_type == "Delete":
        # Never delete topics: they carry accepted notifications and the dead-letter queue. The spend limit is the
        # account's setting: left as it is.
        send_response(event, "SUCCESS", physical_id, reason=f"{suffix} retained on delete")
        return

    remaining_ms = context.get_remaining_time_in_millis() if context else 60_000
    budget_ms = max(5_000, remaining_ms - RESPONSE_MARGIN_MS)
    outcome: dict[str, Any] = {}

    def work() -> None:
        admin = None
        try:
            if spend_limit:
                outcome["data"] = set_sms_spend_limit(sns_factory(), props)
                return
            admin = admin_factory(**admin_config(props, timeout_ms=max(1_000, budget_ms // 3)))
            outcome["data"] = ensure_topics(admin, props, timeout_ms=max(1_000, budget_ms // 3))
        except Exception as exc:
            LOG.exception("topic provisioning failed")
            outcome["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            if admin is not None:
                try:
                    admin.close()
                except Exception:
                    LOG.warning("closing the admin client failed", exc_info=True)

    worker = threading.Thread(target=work, name="ensure-topics", daemon=True)
    worker.start()
    worker.join(budget_ms / 1000)
    if worker.is_alive():
        send_response(
            event,
            "FAILED",
            physical_id,
            reason=f"Kafka did not answer within {budget_ms} ms (bootstrap servers, security groups, IAM?)",
        )
    elif "error" in outcome:
        send_response(event, "FAILED", physical_id, reason=outcome["error"])
    else:
        send_response(event, "SUCCESS", physical_id, data=outcome["data"])
