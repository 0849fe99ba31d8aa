"""template.yaml loops over channels with Fn::ForEach: three independent expansions of it describe one stack.

Each expansion below turns the looped template into plain resources; SAM CLI's implementation of
AWS::LanguageExtensions then resolves them for the same parameter values (what CloudFormation deploys), and the
results must be the same stack. Expansions compared:
- ``devstack``: the one the local stack uses (``devstack.template_config.expand_template``);
- ``sam-cli``: SAM CLI's own (``samcli.lib.cfn_language_extensions``, what ``sam build --language-extensions`` runs);
- ``cfn-lint``: cfn-lint's (what ``sam validate --lint`` checks), an implementation independent of SAM CLI's.
What CloudFormation receives per environment after the SAM transform is a reviewed snapshot
(tests/template/snapshots, tests/template/test_rehearsal.py).
AWS docs: "Fn::ForEach" and "AWS::LanguageExtensions transform" (CloudFormation template reference).
"""

from __future__ import annotations

import json
from collections.abc import Callable
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
from notifications.registry import Channel
from tests.template.conftest import CHANNELS, TEMPLATE

LOOPED = [name.capitalize() for name in CHANNELS]  # the channel loop's items: the logical-id prefixes

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
        "DestinationSecretPrefix": "notifications/destinations",
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


def symmetric_equals(value: Any) -> Any:
    """Fn::Equals with its two operands in one order (cfn-lint's expansion may swap them)."""
    if isinstance(value, list):
        return [symmetric_equals(item) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::Equals"}:
        return {"Fn::Equals": sorted((symmetric_equals(v) for v in value["Fn::Equals"]), key=json.dumps)}
    return {key: symmetric_equals(item) for key, item in value.items()}


# ------------------------------------------------------------------ the comparison


@pytest.mark.parametrize("cluster_type", ["MSK", "SelfManaged"])
def test_the_three_expansions_agree(cluster_type: str) -> None:
    # Given the looped template expanded by the local stack, by SAM CLI and by cfn-lint
    expanded = {name: expand(TEMPLATE) for name, expand in EXPANSIONS.items()}
    # Then, resolved for the same parameters, they are one and the same stack: every section but Transform (the
    # local stack's expansion has done AWS::LanguageExtensions' part), Fn::Equals operands in either order
    devstack = symmetric_equals(resolved(expanded["devstack"], cluster_type))
    for other in ("sam-cli", "cfn-lint"):
        theirs = symmetric_equals(resolved(expanded[other], cluster_type))
        assert set(theirs) == set(devstack), other
        for section in set(devstack) - {"Transform"}:
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


def decoded_by_cfnlint(path: Path) -> Any:
    """A template as cfn-lint (``sam validate --lint``) reads it, in plain dicts and lists."""
    decoded, errors = decode(str(path))
    assert not errors, errors
    return json.loads(json.dumps(decoded))


def test_the_loader_resolves_aliases_and_merge_keys(tmp_path: Path) -> None:
    # Given a mapping written once (&base) that others merge (<<: *base, their own keys win) or alias (*base)
    path = _write(
        tmp_path,
        "A:\n  <<: &base\n    Arn: !GetAtt T.Arn\n    Size: 1\n  Name: a\n"
        "B:\n  <<: *base\n  Size: 2\n"
        "C: [*base, !Sub ['${X}/b', {X: *base}]]\n",
    )

    # When the local stack reads it
    doc = load_yaml(path)

    # Then every use holds the base's keys, as SAM CLI resolves them before CloudFormation gets the template (AWS
    # doc "CloudFormation template format": CloudFormation reads neither aliases nor merge keys) and cfn-lint does
    base = {"Arn": {"Fn::GetAtt": ["T", "Arn"]}, "Size": 1}
    assert doc["A"] == {**base, "Name": "a"}
    assert doc["B"] == {**base, "Size": 2}
    assert doc["C"] == [base, {"Fn::Sub": ["${X}/b", {"X": base}]}]
    assert doc == decoded_by_cfnlint(path)
    # And template.yaml, which writes once what its Kafka triggers, alarms and topics share, reads the same both ways
    assert load_yaml(TEMPLATE) == decoded_by_cfnlint(TEMPLATE)


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
