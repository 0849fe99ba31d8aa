"""template.yaml loops over channels with Fn::ForEach; expanded, it is the hand-written template it replaced.

``fixtures/handwritten-template.yaml`` is template.yaml as it was before the loops (four copies of every sender
resource). Each expansion below turns the looped template into plain resources, then SAM CLI's implementation of
AWS::LanguageExtensions resolves both templates for the same parameter values (what CloudFormation deploys), and
the two must describe the same stack -- resource ids, types, properties, and the permissions each function's role
ends up with -- except for the intended differences listed in this module. Expansions compared:
- ``devstack``: the one the local stack uses (``devstack.template_config.expand_template``);
- ``sam-cli``: SAM CLI's own (``samcli.lib.cfn_language_extensions``, what ``sam build --language-extensions`` runs);
- ``cfn-lint``: cfn-lint's (what ``sam validate --lint`` checks), an implementation independent of SAM CLI's.
AWS docs: "Fn::ForEach" and "AWS::LanguageExtensions transform" (CloudFormation template reference).
"""

from __future__ import annotations

import copy
import fnmatch
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode
from cfnlint.template import Template as CfnLintTemplate
from cfnlint.template.transforms._language_extensions import language_extension
from samcli.lib.cfn_language_extensions.api import process_template
from samcli.lib.cfn_language_extensions.models import PseudoParameterValues

from devstack.template_config import (
    CHANNEL_LOOP,
    TemplateError,
    channel_names,
    expand_template,
    load_template,
    load_yaml,
    main,
)
from notifications.models import Channel
from tests.template.conftest import CHANNELS, TEMPLATE, conditions_for

HANDWRITTEN = Path(__file__).parent / "fixtures" / "handwritten-template.yaml"
LOOPED = [name.capitalize() for name in CHANNELS]  # the channel loop's items: the logical-id prefixes

# ------------------------------------------------------------------ intended differences (each with its reason)
ADDED = {
    # Each channel's topic has its own topic custom resource; KafkaTopics keeps requested and dlq.
    *(f"{c}Topic" for c in LOOPED),
    # Fanout's write permission on each channel topic (one statement listed every channel topic before).
    *(f"{c}TopicProducerPolicy" for c in LOOPED),
    # Each sender's provider permission (SES, secret, SNS): a managed policy per channel, since a policy needs
    # parameters and a Mappings row cannot hold them (an inline statement in each sender before).
    *(f"{c}ProviderPolicy" for c in LOOPED),
    # One DestinationDeliveryFailures alarm per Kafka trigger: Fn::ForEach cannot write the entries of a list,
    # so the single alarm over a metric list per function (DlqDeliveryFailuresAlarm) became one per function.
    "FanoutDestinationDeliveryFailuresAlarm",
    *(f"{c}SenderDestinationDeliveryFailuresAlarm" for c in LOOPED),
}
REMOVED = {"DlqDeliveryFailuresAlarm"}
CHANGED_PROPERTIES = {
    # The channel topics moved to <Channel>Topic (the union of created topics is checked below).
    "KafkaTopics": {"Topics"},
    # Alarm texts are written once per metric now (ConsumerAlarms), not once per alarm.
    **{f"{c}SenderOffsetLagAlarm": {"AlarmDescription"} for c in LOOPED},
    **{f"{f}Alarm": {"AlarmDescription"} for f in ("FanoutOffsetLag", "FanoutErrors", "TopicsErrors")},
}
# A sender's trigger also waits for its channel's topic resource.
CHANGED_DEPENDS_ON = {f"{c}SenderKafkaTrigger": {f"{c}Topic"} for c in LOOPED}
# TopicsFunction manages notifications.* (exactly this application's topics) instead of listing each topic.
TOPICS_WILDCARD = "arn:aws:kafka:eu-central-1:111111111111:topic/notifications/abc-1/notifications.*"
# A description that named the KafkaTopics resource.
CHANGED_PARAMETERS = {"TopicPartitions"}

# ------------------------------------------------------------------ resolving a template as CloudFormation would

PSEUDO = PseudoParameterValues(
    region="eu-central-1", account_id="111111111111", stack_name="stack", partition="aws", url_suffix="amazonaws.com"
)


def parameter_values(cluster_type: str) -> dict[str, str]:
    msk = cluster_type == "MSK"
    secret = "arn:aws:secretsmanager:eu-central-1:111111111111:secret:"
    return {
        "KafkaClusterType": cluster_type,
        "KafkaClusterArn": "arn:aws:kafka:eu-central-1:111111111111:cluster/notifications/abc-1" if msk else "",
        "KafkaScramSecretArn": "" if msk else f"{secret}scram-AbCdEf",
        "KafkaBootstrapServers": "b-1:9098,b-2:9098",
        "SubnetIds": "subnet-1,subnet-2",
        "SecurityGroupIds": "sg-1",
        "EmailFromAddress": "orders@example.com",
        "SesIdentity": "example.com",
        "SesConfigurationSet": "orders",
        "SlackWebhookSecretArn": f"{secret}slack-AbCdEf",
        "WebhookSecretArn": f"{secret}webhook-AbCdEf",
        "AlarmTopicArn": "arn:aws:sns:eu-central-1:111111111111:alarms",
    }


def resolved(template: dict[str, Any], cluster_type: str) -> dict[str, Any]:
    """Parameters, conditions and intrinsic functions resolved by SAM CLI's AWS::LanguageExtensions pipeline."""
    result: dict[str, Any] = process_template(
        template, parameter_values=parameter_values(cluster_type), pseudo_parameters=PSEUDO
    )
    return result


def cfnlint_expansion(template_path: Path) -> dict[str, Any]:
    decoded, errors = decode(str(template_path))
    assert not errors, errors
    matches, expanded = language_extension(CfnLintTemplate(str(template_path), decoded, ["eu-central-1"]))
    assert not matches, matches
    plain: dict[str, Any] = json.loads(json.dumps(expanded))
    return plain


EXPANSIONS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "devstack": lambda path: expand_template(load_yaml(path)),
    "sam-cli": load_yaml,  # process_template expands Fn::ForEach itself
    "cfn-lint": cfnlint_expansion,
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_permissions(template: dict[str, Any], function: str, cluster_type: str) -> set[tuple[str, ...]]:
    """Every (effect, action, resource, condition) the function's role gets: inline, by Ref, or attached to it."""
    resources = template["Resources"]
    conditions = conditions_for(cluster_type)

    def active(resource: dict[str, Any]) -> bool:
        return "Condition" not in resource or conditions[resource["Condition"]]

    documents = []
    for policy in resources[function]["Properties"].get("Policies", []):
        if "Statement" in policy:
            documents.append(policy)
        elif set(policy) == {"Ref"} and active(resources[policy["Ref"]]):
            documents.append(resources[policy["Ref"]]["Properties"]["PolicyDocument"])
    for resource in resources.values():
        roles = resource.get("Properties", {}).get("Roles", [])
        if resource["Type"] == "AWS::IAM::Policy" and active(resource) and {"Ref": f"{function}Role"} in roles:
            documents.append(resource["Properties"]["PolicyDocument"])
    return {
        (statement["Effect"], action, json.dumps(arn, sort_keys=True), json.dumps(statement.get("Condition")))
        for document in documents
        for statement in _as_list(document["Statement"])
        for action in _as_list(statement["Action"])
        for arn in _as_list(statement["Resource"])
    }


def symmetric_equals(value: Any) -> Any:
    """Fn::Equals with its two operands in one order (cfn-lint's expansion may swap them)."""
    if isinstance(value, list):
        return [symmetric_equals(item) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::Equals"}:
        return {"Fn::Equals": sorted((symmetric_equals(v) for v in value["Fn::Equals"]), key=json.dumps)}
    return {key: symmetric_equals(item) for key, item in value.items()}


def without(resource: dict[str, Any], properties: Iterable[str]) -> dict[str, Any]:
    trimmed = copy.deepcopy(resource)
    for name in properties:
        trimmed.get("Properties", {}).pop(name, None)
    trimmed.pop("DependsOn", None)
    return trimmed


# ------------------------------------------------------------------ the comparison


@pytest.mark.parametrize("cluster_type", ["MSK", "SelfManaged"])
@pytest.mark.parametrize("expansion", list(EXPANSIONS))
def test_the_expanded_template_is_the_handwritten_one(expansion: str, cluster_type: str) -> None:
    # Given the hand-written template and the looped one, expanded, both resolved for the same parameters
    before = resolved(load_yaml(HANDWRITTEN), cluster_type)
    after = resolved(EXPANSIONS[expansion](TEMPLATE), cluster_type)
    old, new = before["Resources"], after["Resources"]

    # Then the same resources, but for the intended additions and removals
    assert set(new) - ADDED == set(old) - REMOVED
    assert set(new) >= ADDED and set(old) >= REMOVED
    for name in set(old) & set(new):
        # of the same type, with the same properties (permissions compared below, intended changes listed)
        assert new[name]["Type"] == old[name]["Type"], name
        changed = {"Policies", *CHANGED_PROPERTIES.get(name, ())}
        assert without(new[name], changed) == without(old[name], changed), name
        depends_on = set(_as_list(new[name].get("DependsOn", [])))
        assert depends_on - CHANGED_DEPENDS_ON.get(name, set()) == set(_as_list(old[name].get("DependsOn", []))), name

    # And every function's role has the same permissions, but TopicsFunction's wildcard over the same topics
    functions = [name for name, res in old.items() if res["Type"] == "AWS::Serverless::Function"]
    for function in functions:
        was, now = role_permissions(before, function, cluster_type), role_permissions(after, function, cluster_type)
        gained, lost = now - was, was - now
        if function == "TopicsFunction" and cluster_type == "MSK":
            assert {json.loads(arn) for _, _, arn, _ in gained} == {TOPICS_WILDCARD}
            assert {action for _, action, _, _ in gained} == {action for _, action, _, _ in lost}
            assert lost and all(fnmatch.fnmatchcase(json.loads(arn), TOPICS_WILDCARD) for _, _, arn, _ in lost)
        else:
            assert (gained, lost) == (set(), set()), function

    # And the topics created, the dead-letter alarms' coverage, the other sections are those of before
    def created(resources: dict[str, Any]) -> set[str]:
        return {
            t for res in resources.values() if res["Type"] == "Custom::KafkaTopics" for t in res["Properties"]["Topics"]
        }

    assert created(new) == created(old)
    watched_before = {
        json.dumps(m["MetricStat"]["Metric"]["Dimensions"])
        for m in old["DlqDeliveryFailuresAlarm"]["Properties"]["Metrics"]
        if "MetricStat" in m
    }
    watched_now = {
        json.dumps(res["Properties"]["Dimensions"])
        for res in new.values()
        if res["Type"] == "AWS::CloudWatch::Alarm"
        and res["Properties"].get("MetricName") == "DestinationDeliveryFailures"
    }
    assert watched_now == watched_before
    for section in ("Rules", "Globals", "Outputs"):
        assert after[section] == before[section], section
    assert symmetric_equals(after["Conditions"]) == symmetric_equals(before["Conditions"])
    changed_parameters = {
        n
        for n in {*before["Parameters"], *after["Parameters"]}
        if before["Parameters"].get(n) != after["Parameters"].get(n)
    }
    assert changed_parameters == CHANGED_PARAMETERS


@pytest.mark.parametrize("cluster_type", ["MSK", "SelfManaged"])
def test_the_three_expansions_agree(cluster_type: str) -> None:
    # Given the looped template expanded by the local stack, by SAM CLI and by cfn-lint
    expanded = {name: expand(TEMPLATE) for name, expand in EXPANSIONS.items()}
    # Then, resolved for the same parameters, they are one and the same stack
    devstack = resolved(expanded["devstack"], cluster_type)
    for other in ("sam-cli", "cfn-lint"):
        theirs = resolved(expanded[other], cluster_type)
        for section in ("Resources", "Outputs"):
            assert theirs[section] == devstack[section], (other, section)
    # And before any parameter is resolved, cfn-lint's expansion is the local stack's once literal lookups are done
    assert expand_template(expanded["cfn-lint"])["Resources"] == expanded["devstack"]["Resources"]


# ------------------------------------------------------------------ the expansion itself, on small templates

LOOPS = """
Transform: [AWS::LanguageExtensions, AWS::Serverless-2016-10-31]
Parameters:
  Names: {Type: CommaDelimitedList, Default: "A,B"}
Mappings:
  Rows:
    A: {Name: a, Extra: x}
    B: {Name: b}
Resources:
  Fn::ForEach::Things:
    - Thing
    - !Ref Names
    - ${Thing}Queue:
        Type: AWS::SQS::Queue
        Properties:
          QueueName: !Sub ["q-${Name}", {Name: !FindInMap [Rows, !Ref Thing, Name]}]
          Thing: !Ref Thing
          Extra: !FindInMap [Rows, !Ref Thing, Extra, {DefaultValue: !Ref AWS::NoValue}]
          Topic: !Ref {Fn::Sub: "${Thing}SmallTopic"}
          Stacked: !Sub "${AWS::StackName}-${Thing}"
          Escaped: !Sub "${!Literal}-${Thing}"
          Region: !FindInMap [Rows, !Ref AWS::Region, Name]
      Fn::ForEach::Sizes:
        - Size
        - [Small, Large]
        - ${Thing}${Size}Topic: {Type: AWS::SNS::Topic}
Outputs:
  Fn::ForEach::Hosts:
    - Host
    - [db.internal, cache-1]
    - Host&{Host}: {Value: !Ref Host}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _expand(tmp_path: Path, text: str, parameters: dict[str, str] | None = None) -> dict[str, Any]:
    return expand_template(load_yaml(_write(tmp_path, text)), parameters)


def test_the_loader_reads_short_tags_in_their_long_form(tmp_path: Path) -> None:
    doc = load_yaml(
        _write(
            tmp_path,
            "a: !Ref X\nb: !GetAtt T.Arn\nc: !Sub 'x-${Y}'\nd: !If [C, 1, !Ref AWS::NoValue]\n"
            "e: !Split [',', !Ref L]\nf: !Ref {Fn::Sub: '${Z}Function'}\n",
        )
    )
    assert doc["a"] == {"Ref": "X"}
    assert doc["b"] == {"Fn::GetAtt": ["T", "Arn"]}
    assert doc["c"] == {"Fn::Sub": "x-${Y}"}
    assert doc["d"] == {"Fn::If": ["C", 1, {"Ref": "AWS::NoValue"}]}
    assert doc["e"] == {"Fn::Split": [",", {"Ref": "L"}]}
    assert doc["f"] == {"Ref": {"Fn::Sub": "${Z}Function"}}
    # AWS::LanguageExtensions must come before the SAM transform (AWS doc: AWS::LanguageExtensions transform).
    assert load_yaml(TEMPLATE)["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]


def test_for_each_writes_each_item_into_keys_refs_subs_and_nested_loops(tmp_path: Path) -> None:
    # Given loops over a CommaDelimitedList parameter and literal lists, nested, in Resources and Outputs
    expanded = _expand(tmp_path, LOOPS)

    # Then every ${Identifier} in a key and !Ref Identifier became the item (AWS doc: Fn::ForEach)
    assert set(expanded["Resources"]) == {
        "AQueue", "BQueue", "ASmallTopic", "ALargeTopic", "BSmallTopic", "BLargeTopic"
    }  # fmt: skip
    a, b = expanded["Resources"]["AQueue"]["Properties"], expanded["Resources"]["BQueue"]["Properties"]
    # literal lookups are resolved as the transform resolves them, a missing key to its DefaultValue
    # (AWS doc: Fn::FindInMap enhancements); a key that needs a deploy-time value is left to CloudFormation
    assert (a["QueueName"], a["Thing"], a["Extra"]) == ("q-a", "A", "x")
    assert (b["QueueName"], b["Extra"]) == ("q-b", {"Ref": "AWS::NoValue"})
    assert a["Region"] == {"Fn::FindInMap": ["Rows", {"Ref": "AWS::Region"}, "Name"]}
    # a Sub left with no variable is its string; the others keep what only CloudFormation can fill in
    assert a["Topic"] == {"Ref": "ASmallTopic"}
    assert a["Stacked"] == {"Fn::Sub": "${AWS::StackName}-A"}
    assert a["Escaped"] == "${Literal}-A"
    # &{Identifier} drops what is not alphanumeric (AWS doc: Fn::ForEach, OutputKey)
    assert expanded["Outputs"] == {"Hostdbinternal": {"Value": "db.internal"}, "Hostcache1": {"Value": "cache-1"}}
    # and the transform is done: SAM's is the one left
    assert expanded["Transform"] == ["AWS::Serverless-2016-10-31"]


def test_a_collection_parameter_takes_the_value_given(tmp_path: Path) -> None:
    expanded = _expand(tmp_path, LOOPS, {"Names": "B"})
    assert set(expanded["Resources"]) == {"BQueue", "BSmallTopic", "BLargeTopic"}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        # Fn::ForEach only exists with the transform (AWS doc: Fn::ForEach)
        ("Resources:\n  Fn::ForEach::X: [I, [a], {'${I}T': {Type: AWS::SNS::Topic}}]\n", "needs the AWS::Language"),
        # two items that write the same logical id
        (
            "Transform: AWS::LanguageExtensions\nResources:\n"
            "  Fn::ForEach::X: [I, [a-b, ab], {'T&{I}': {Type: AWS::SNS::Topic}}]\n",
            "conflict",
        ),
        # a lookup with literal keys that finds nothing and has no DefaultValue
        (
            "Transform: AWS::LanguageExtensions\nMappings: {M: {K: {V: v}}}\nResources:\n"
            "  T: {Type: AWS::SNS::Topic, Properties: {TopicName: !FindInMap [M, K, Missing]}}\n",
            "no value",
        ),
    ],
)
def test_what_cloudformation_refuses_is_refused(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(TemplateError, match=error):
        _expand(tmp_path, text)


def test_the_channel_list_is_the_codes_and_every_channel_gets_a_sender() -> None:
    # The template's channel list names the channels the code knows
    assert set(channel_names(TEMPLATE)) == {channel.value for channel in Channel}
    # And the local stack finds one sender per channel, with its CHANNEL and its topic
    functions = load_template(TEMPLATE).functions
    for name in channel_names(TEMPLATE):
        sender = functions[f"{name.capitalize()}SenderFunction"]
        assert sender.environment["CHANNEL"] == name
        assert [t.topics for t in sender.kafka_triggers] == [(f"notifications.{name}",)]


def test_the_outputs_loop_runs_over_the_channel_list() -> None:
    # Outputs cannot share the Resources loop, so the list is written twice: they must not drift apart
    written = load_yaml(TEMPLATE)
    assert written["Outputs"]["Fn::ForEach::ChannelOutputs"][1] == written["Resources"][CHANNEL_LOOP][1] == LOOPED


def test_a_channel_without_a_row_is_an_error(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "Mappings: {Channels: {Email: {Name: email}}}\n"
        "Resources: {'Fn::ForEach::Channels': [Channel, [Email, Fax], {'${Channel}Topic': {Type: AWS::SNS::Topic}}]}\n",
    )
    with pytest.raises(TemplateError, match="'Fax' has no Name"):
        channel_names(path)


def test_the_expanded_template_is_written_for_checkov(tmp_path: Path) -> None:
    # make test scans this file with checkov, which cannot expand Fn::ForEach itself
    output = tmp_path / "expanded" / "template.json"
    assert main(["--output", str(output)]) == 0
    assert json.loads(output.read_text(encoding="utf-8")) == expand_template(load_yaml(TEMPLATE))
