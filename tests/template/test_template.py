"""template.yaml and samconfig.toml: structure and the guarantees the template carries.

`sam validate --lint`, `sam build` and `sam package` run once per session in the deploy rehearsal
(tests/template/test_rehearsal.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from notifications.registry import Channel, spec
from notifications.runtime.dlq import DeadLetterSettings
from notifications.settings import FanoutSettings, IngestSettings, SenderSettings
from tests.template.conftest import (
    CHANNELS,
    ROOT,
    conditions_for,
    function_environment,
    functions,
    kafka_triggers,
    load_template,
    resolve,
)

# Every Kafka consumer and its topic; senders are named after their channel (email -> EmailSenderFunction).
KAFKA_FUNCTIONS = {
    "FanoutFunction": "notifications.requested",
    **{f"{channel.capitalize()}SenderFunction": f"notifications.{channel}" for channel in CHANNELS},
}
# Reads the DLQ; its trigger cannot dead-letter to its own source topic.
DLQ_FUNCTION = "DlqFunction"
LITERAL_TRIGGER_SETTINGS = {
    "Topics": list,
    "StartingPosition": str,
    "BatchSize": int,
    "MaximumBatchingWindowInSeconds": int,
    "ConsumerGroupId": str,
    "FunctionResponseTypes": list,
    "MaximumRetryAttempts": int,
    "MaximumRecordAgeInSeconds": int,
    "BisectBatchOnFunctionError": bool,
}


def _code_dir(props: dict[str, Any]) -> Path:
    return ROOT / str(props["CodeUri"])


# ------------------------------------------------------------------ functions and code


def test_every_function_handler_exists_at_its_code_uri(template: dict[str, Any]) -> None:
    missing = []
    for name, res in functions(template).items():
        props = res["Properties"]
        module, _, attribute = props["Handler"].rpartition(".")
        source = _code_dir(props) / (module.replace(".", "/") + ".py")
        if not source.is_file():
            missing.append(f"{name}: {source.relative_to(ROOT)}")
        elif not re.search(rf"^def {attribute}\(", source.read_text(encoding="utf-8"), re.MULTILINE):
            missing.append(f"{name}: no `def {attribute}(` in {source.relative_to(ROOT)}")
    assert not missing, missing


def test_expected_functions_and_handlers(template: dict[str, Any]) -> None:
    fns = functions(template)
    assert fns["IngestFunction"]["Properties"]["CodeUri"].rstrip("/") == "functions/ingest"
    assert fns["IngestFunction"]["Properties"]["Handler"] == "ingest_handler.handler"
    assert fns["FanoutFunction"]["Properties"]["CodeUri"].rstrip("/") == "functions/fanout"
    assert fns["FanoutFunction"]["Properties"]["Handler"] == "fanout_handler.handler"
    assert fns["TopicsFunction"]["Properties"]["Handler"] == "topics_handler.handler"
    routes = {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for event in fns["IngestFunction"]["Properties"]["Events"].values()
        if event["Type"] == "HttpApi"
    }
    assert routes == {("POST", "/v1/notifications"), ("GET", "/v1/notifications/{id}")}


def test_globals_runtime_is_python313_arm64_with_json_logs_and_tracing(template: dict[str, Any]) -> None:
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.13"
    # arm64 unless the Architecture parameter says x86_64 (samconfig's `local` environment, for sam local invoke)
    architecture = {"Ref": "Architecture"}
    assert template["Parameters"]["Architecture"]["Default"] == "arm64"
    assert glob["Architectures"] == [architecture]
    assert glob["LoggingConfig"]["LogFormat"] == "JSON"
    assert glob["Tracing"] == "Active"
    for name, res in functions(template).items():
        props = res["Properties"]
        assert props.get("Runtime", glob["Runtime"]) == "python3.13", name
        assert props.get("Architectures", glob["Architectures"]) == [architecture], name
    for name, res in template["Resources"].items():
        if res["Type"] == "AWS::Serverless::LayerVersion":
            assert res["Properties"]["CompatibleArchitectures"] == [architecture], name


def test_every_function_runs_in_the_vpc(template: dict[str, Any]) -> None:
    """Every function runs in the VPC (checkov CKV_AWS_117 checks it too; this also covers SAM Globals)."""
    glob_vpc = template["Globals"]["Function"].get("VpcConfig")
    assert glob_vpc == {"SubnetIds": {"Ref": "SubnetIds"}, "SecurityGroupIds": {"Ref": "SecurityGroupIds"}}
    for name, res in functions(template).items():
        assert res["Properties"].get("VpcConfig", glob_vpc), name


def test_layers_build_with_makefiles_and_do_not_ship_boto3() -> None:
    template = load_template()
    for layer, content in (("SharedLayer", "layers/shared"), ("DepsLayer", "layers/deps")):
        res = template["Resources"][layer]
        assert res["Properties"]["ContentUri"].rstrip("/") == content
        assert res["Metadata"]["BuildMethod"] == "makefile"
        makefile = (ROOT / content / "Makefile").read_text(encoding="utf-8")
        assert f"build-{layer}:" in makefile
    deps = (ROOT / "layers/deps/Makefile").read_text(encoding="utf-8")
    for flag in ("--platform", "manylinux2014_aarch64", "--python-version", "3.13", "--only-binary=:all:"):
        assert flag in deps
    requirements = (ROOT / "layers/deps/requirements.txt").read_text(encoding="utf-8").lower()
    assert not re.search(r"^\s*boto3", requirements, re.MULTILINE)


# ------------------------------------------------------------------ Kafka triggers


@pytest.mark.parametrize("cluster_type", ["MSK", "SelfManaged"])
def test_kafka_functions_report_batch_item_failures_and_dead_letter(
    template: dict[str, Any], cluster_type: str
) -> None:
    triggers = kafka_triggers(template, cluster_type)
    assert set(triggers) == {*KAFKA_FUNCTIONS, DLQ_FUNCTION}
    for function, topic in KAFKA_FUNCTIONS.items():
        (trigger,) = triggers[function]
        assert trigger["Topics"] == [topic]
        assert trigger["FunctionResponseTypes"] == ["ReportBatchItemFailures"], function
        assert trigger["DestinationConfig"]["OnFailure"]["Destination"] == "kafka://notifications.dlq", function
        assert trigger["StartingPosition"] == "TRIM_HORIZON"
        # Retries, bisect and Kafka destinations need provisioned mode.
        assert trigger["ProvisionedPollerConfig"]
        if cluster_type == "MSK":
            assert trigger["EventSourceArn"] == {"Ref": "KafkaClusterArn"}
            assert "SelfManagedEventSource" not in trigger
        else:
            assert "EventSourceArn" not in trigger
            assert trigger["SelfManagedEventSource"]["Endpoints"]["KafkaBootstrapServers"]
            types = {conf["Type"] for conf in trigger["SourceAccessConfigurations"]}
            assert {"SASL_SCRAM_512_AUTH", "VPC_SUBNET", "VPC_SECURITY_GROUP"} <= types


def test_the_dlq_function_reads_every_dead_letter_and_never_drops_one(template: dict[str, Any]) -> None:
    (trigger,) = kafka_triggers(template)[DLQ_FUNCTION]
    assert trigger["Topics"] == ["notifications.dlq"]
    assert trigger["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # Lambda refuses an on-failure destination that is one of the source topics (kafka-on-failure-destination.html,
    # "Recursion prevention"); without one, records are retried until processed, never discarded.
    assert "DestinationConfig" not in trigger
    assert (trigger["MaximumRetryAttempts"], trigger["MaximumRecordAgeInSeconds"]) == (-1, -1)
    props = functions(template)[DLQ_FUNCTION]["Properties"]
    assert (props["CodeUri"].rstrip("/"), props["Handler"]) == ("functions/dlq", "dlq_handler.handler")


def test_trigger_settings_are_literal_for_the_local_runner(template: dict[str, Any]) -> None:
    """The local runner reads these from template.yaml; an intrinsic here would hide the value from it."""
    consumer_groups = set()
    for function, (trigger,) in kafka_triggers(template).items():
        for key, kind in LITERAL_TRIGGER_SETTINGS.items():
            assert isinstance(trigger.get(key), kind), f"{function}.{key} = {trigger.get(key)!r}"
        if function != DLQ_FUNCTION:
            assert isinstance(trigger["DestinationConfig"]["OnFailure"]["Destination"], str)
        assert 60 <= trigger["MaximumRecordAgeInSeconds"] <= 604800 or trigger["MaximumRecordAgeInSeconds"] == -1
        consumer_groups.add(trigger["ConsumerGroupId"])
        raw = template["Resources"][trigger["Resource"]]["Properties"]
        assert "Fn::If" not in str({k: raw[k] for k in LITERAL_TRIGGER_SETTINGS if k in raw}), function
    assert len(consumer_groups) == len(KAFKA_FUNCTIONS) + 1, "consumer groups must be unique per function"
    # The same consumer group whichever cluster type is deployed.
    assert {f: t[0]["ConsumerGroupId"] for f, t in kafka_triggers(template, "SelfManaged").items()} == {
        f: t[0]["ConsumerGroupId"] for f, t in kafka_triggers(template, "MSK").items()
    }


def _created_topics(template: dict[str, Any]) -> dict[str, str]:
    """{topic: logical id of the custom resource that creates it}."""
    return {
        topic: name
        for name, res in template["Resources"].items()
        if res["Type"] == "Custom::KafkaTopics"
        for topic in res["Properties"]["Topics"]
    }


def test_every_channel_has_a_sender_a_topic_and_a_trigger(template: dict[str, Any]) -> None:
    fns = functions(template)
    topics = _created_topics(template)
    assert {"notifications.requested", "notifications.dlq"} <= set(topics)
    triggers = kafka_triggers(template)
    senders = {}
    for name, res in fns.items():
        channel = res["Properties"].get("Environment", {}).get("Variables", {}).get("CHANNEL")
        if channel:
            senders[channel] = name
            assert res["Properties"]["CodeUri"].rstrip("/") == "functions/senders", name
            assert res["Properties"]["Handler"] == "sender_handler.handler", name
    assert set(senders) == set(CHANNELS)
    for channel in CHANNELS:
        assert f"notifications.{channel}" in topics, channel
        assert [t["Topics"] for t in triggers[senders[channel]]] == [[f"notifications.{channel}"]], channel
        assert triggers[senders[channel]][0]["ConsumerGroupId"] == f"notifications-sender-{channel}"


def test_topic_custom_resources(template: dict[str, Any]) -> None:
    created = _created_topics(template)
    for name in set(created.values()):
        props = template["Resources"][name]["Properties"]
        assert props["ServiceToken"] == {"Fn::GetAtt": ["TopicsFunction", "Arn"]}, name
        assert props["Partitions"] == {"Ref": "TopicPartitions"}, name
        assert props["ReplicationFactor"] == 3, name
        assert props["MinInsyncReplicas"] == 2, name
    # A trigger starts only once its topic and the dead-letter topic (its on-failure destination) exist.
    for (trigger,) in kafka_triggers(template).values():
        depends_on = template["Resources"][trigger["Resource"]].get("DependsOn", [])
        needed = {created[topic] for topic in [*trigger["Topics"], "notifications.dlq"]}
        assert needed <= set([depends_on] if isinstance(depends_on, str) else depends_on), trigger["Resource"]


# ------------------------------------------------------------------ environment, IAM, data


def test_shared_settings_come_from_globals(template: dict[str, Any]) -> None:
    for function in functions(template):
        env = function_environment(template, function)
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["KAFKA_SASL_MECHANISM"] == "AWS_MSK_IAM"
        assert env["TOPIC_REQUESTED"] == "notifications.requested"
        assert env["TOPIC_PREFIX"] == "notifications."
        assert env["TOPIC_DLQ"] == "notifications.dlq"
        assert env["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"
        for name in (
            "KAFKA_BOOTSTRAP_SERVERS",
            "STATUS_TABLE_NAME",
            "IDEMPOTENCY_TABLE_NAME",
            "POWERTOOLS_SERVICE_NAME",
            "POWERTOOLS_METRICS_NAMESPACE",
            "POWERTOOLS_LOG_LEVEL",
        ):
            assert env.get(name), f"{function}: {name}"


SETTINGS_BY_HANDLER = {
    "ingest_handler.handler": IngestSettings,
    "fanout_handler.handler": FanoutSettings,
    "sender_handler.handler": SenderSettings,
    "dlq_handler.handler": DeadLetterSettings,
}


def deploy_time_value(template: dict[str, Any], name: str, value: Any) -> str:
    """A literal as it is; a parameter by its default (the value a deployment without overrides gets); anything
    else CloudFormation resolves at deploy time as a placeholder."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"}:
        default = template.get("Parameters", {}).get(value["Ref"], {}).get("Default")
        if default not in (None, ""):
            return str(default)
    return f"deploy-time-{name.lower()}"


@pytest.mark.parametrize("cluster_type", ["MSK", "SelfManaged"])
def test_every_setting_a_function_reads_is_set(template: dict[str, Any], cluster_type: str) -> None:
    """Each function's environment validates against the settings model its handler reads (a parameter stands in
    with its default if it has one, other values that CloudFormation resolves at deploy time as placeholders)."""
    checked = set()
    for function, resource in functions(template).items():
        model = SETTINGS_BY_HANDLER.get(resource["Properties"]["Handler"])
        if model is None:
            continue
        env = {
            k: deploy_time_value(template, k, v)
            for k, v in function_environment(template, function, cluster_type).items()
        }
        model.from_env(env)  # raises ConfigurationError naming what is missing or wrong
        if "CHANNEL" in env:  # a sender also reads the settings its channel package declares
            declared = spec(Channel(env["CHANNEL"])).settings.model_fields
            required = {name.upper() for name, field in declared.items() if field.is_required()}
            assert required <= set(env), f"{function} lacks {sorted(required - set(env))}"
        checked.add(model)
    assert checked == set(SETTINGS_BY_HANDLER.values())


def test_secrets_are_passed_by_reference(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert "secretsmanager" in params["KafkaScramSecretArn"]["AllowedPattern"]
    # Each caller's Slack and webhook destination is a secret named from this prefix, never a value in the template.
    assert "DestinationSecretPrefix" in params and "Default" in params["DestinationSecretPrefix"]
    for function in functions(template):
        for key, value in function_environment(template, function, "SelfManaged").items():
            if key == "DESTINATION_SECRET_PREFIX":  # where the callers' secrets are named, no secret itself
                assert value in ({"Ref": "DestinationSecretPrefix"}, {"Fn::Sub": "${AWS::StackName}/destinations"})
            elif re.search(r"SECRET|PASSWORD|TOKEN|WEBHOOK_URL", key):
                assert isinstance(value, dict) and "Ref" in value, f"{function}.{key} must reference a parameter"


def _policy_statements(template: dict[str, Any], cluster_type: str) -> list[tuple[str, dict[str, Any]]]:
    """(function, statement) for every statement a function's role gets: inline, managed (by Ref) or attached."""
    conditions = conditions_for(cluster_type)
    resources = resolve(template["Resources"], conditions)
    found = []
    for name, res in resources.items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        documents = []
        for policy in res["Properties"].get("Policies", []):
            if isinstance(policy, dict) and "Statement" in policy:
                documents.append(policy)
            elif isinstance(policy, dict) and set(policy) == {"Ref"} and policy["Ref"] in resources:
                documents.append(resources[policy["Ref"]]["Properties"]["PolicyDocument"])
        for attached in resources.values():
            roles = attached.get("Properties", {}).get("Roles", [])
            active = "Condition" not in attached or conditions[attached["Condition"]]
            if attached["Type"] == "AWS::IAM::Policy" and active:
                documents += [attached["Properties"]["PolicyDocument"]] if {"Ref": f"{name}Role"} in roles else []
        for document in documents:
            statements = document["Statement"]
            found += [(name, statement) for statement in (statements if isinstance(statements, list) else [statements])]
    return found


@pytest.mark.parametrize("cluster_type", ["MSK", "SelfManaged"])
def test_least_privilege(template: dict[str, Any], cluster_type: str) -> None:
    statements = _policy_statements(template, cluster_type)
    assert statements
    # Only actions without resource-level permissions may use Resource "*".
    star_ok = {"sns:Publish", "sns:SetSMSAttributes", "ec2:DescribeVpcs", "ec2:DescribeSecurityGroups"}
    for name, statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert statement["Effect"] == "Allow"
        assert not [a for a in actions if "*" in a], f"{name}: wildcard action {actions}"
        if "*" in resources:
            assert set(actions) <= star_ok, f"{name}: Resource * for {actions}"
    sms = [s for n, s in statements if n == "SmsSenderFunction" and s["Action"] == "sns:Publish"]
    assert sms and sms[0]["Resource"] == "*"
    # Any other sns:Publish is a channel sender's, to resources of this account and region only (push: its platform
    # endpoints); no other function publishes.
    senders = {f"{channel.value.capitalize()}SenderFunction" for channel in Channel}
    scoped = "arn:${AWS::Partition}:sns:${AWS::Region}:${AWS::AccountId}:"
    others = [(n, s) for n, s in statements if n != "SmsSenderFunction" and "sns:Publish" in str(s["Action"])]
    for name, statement in others:
        assert name in senders, f"{name} may publish to SNS"
        assert statement["Resource"]["Fn::Sub"].startswith(scoped), f"{name}: {statement['Resource']}"
    # Each sender reads only its own channel's topic and consumer group.
    for function, topic in KAFKA_FUNCTIONS.items():
        read = [s for n, s in statements if n == function and "kafka-cluster:ReadData" in s["Action"]]
        if cluster_type == "MSK":
            assert len(read) == 1 and str(read[0]["Resource"]).count("notifications.") == 1, function
            assert f"/{topic}" in str(read[0]["Resource"]), function
        else:
            assert not read, function


def test_tables_have_pitr_sse_on_demand_and_expected_keys(template: dict[str, Any]) -> None:
    res = template["Resources"]
    for name in ("IdempotencyTable", "StatusTable"):
        props = res[name]["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["SSESpecification"]["SSEEnabled"] is True
    idem = res["IdempotencyTable"]["Properties"]
    assert idem["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert idem["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    status = res["StatusTable"]["Properties"]
    assert status["KeySchema"] == [
        {"AttributeName": "notification_id", "KeyType": "HASH"},
        {"AttributeName": "channel", "KeyType": "RANGE"},
    ]


def test_alarms_cover_errors_and_offset_lag_per_function_and_the_dlq(template: dict[str, Any]) -> None:
    alarms = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]

    def watched(metric: str) -> set[str]:
        return {
            a["Dimensions"][0]["Value"]["Ref"]
            for a in alarms
            if a.get("MetricName") == metric and a.get("Namespace") == "AWS/Lambda"
        }

    assert set(functions(template)) <= watched("Errors")
    assert set(KAFKA_FUNCTIONS) <= watched("OffsetLag")
    # Records a trigger could not hand to its on-failure destination (kafka://notifications.dlq).
    assert set(KAFKA_FUNCTIONS) <= watched("DestinationDeliveryFailures")
    assert any("dlq" in a.get("AlarmDescription", "").lower() for a in alarms)


def test_dlq_alarm_watches_metrics_the_code_emits(template: dict[str, Any]) -> None:
    alarm = template["Resources"]["DlqGrowthAlarm"]["Properties"]
    watched = {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m}
    namespaces = {m["MetricStat"]["Metric"]["Namespace"] for m in alarm["Metrics"] if "MetricStat" in m}
    source = "\n".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "layers/shared/python/notifications").rglob("*.py")
    )
    emitted = set(re.findall(r'add_metric\(name="(\w+)"', source))
    assert watched and watched <= emitted, watched - emitted
    glob_env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert namespaces == {glob_env["POWERTOOLS_METRICS_NAMESPACE"]}
    services = {
        d["Value"] for m in alarm["Metrics"] if "MetricStat" in m for d in m["MetricStat"]["Metric"]["Dimensions"]
    }
    assert services == {glob_env["POWERTOOLS_SERVICE_NAME"]}
    for function in functions(template):
        assert (
            function_environment(template, function)["POWERTOOLS_SERVICE_NAME"] == glob_env["POWERTOOLS_SERVICE_NAME"]
        )


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    for name in ("ApiUrl", "StatusTableName", "IdempotencyTableName"):
        assert name in outputs, name
    for function in functions(template):
        assert outputs[f"{function}Name"] == {"Value": {"Ref": function}}, function


# ------------------------------------------------------------------ samconfig.toml


def test_samconfig_environments(template: dict[str, Any], samconfig: dict[str, Any]) -> None:
    assert samconfig["version"] == 0.1
    declared = set(template["Parameters"])
    required = {name for name, p in template["Parameters"].items() if "Default" not in p}
    for env in ("default", "dev", "staging", "prod"):
        section = samconfig[env]
        assert section["global"]["parameters"]["stack_name"]
        assert section["global"]["parameters"]["region"]
        build = section["build"]["parameters"]
        assert build["cached"] is True and build["parallel"] is True
        deploy = section["deploy"]["parameters"]
        assert "CAPABILITY_IAM" in deploy["capabilities"]
        overrides = dict(item.split("=", 1) for item in deploy["parameter_overrides"])
        assert set(overrides) <= declared, set(overrides) - declared
        assert required <= set(overrides), required - set(overrides)
        for name, value in overrides.items():
            spec = template["Parameters"][name]
            if "AllowedValues" in spec:
                assert value in [str(v) for v in spec["AllowedValues"]], (env, name, value)
            if "AllowedPattern" in spec:
                assert re.fullmatch(spec["AllowedPattern"], value), (env, name, value)
    assert samconfig["prod"]["deploy"]["parameters"]["confirm_changeset"] is True
    assert len({samconfig[e]["global"]["parameters"]["stack_name"] for e in ("dev", "staging", "prod")}) == 3
