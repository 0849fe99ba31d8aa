"""Fixtures and helpers for checking template.yaml / samconfig.toml without AWS.

template.yaml loops over channels with ``Fn::ForEach`` (AWS::LanguageExtensions), so the checks read it expanded,
through the expansion the local runner uses (``devstack.template_config.expanded_template``); intrinsic functions
come in their long JSON form (``{"Ref": ...}``, ``{"Fn::GetAtt": [...]}``).
``kafka_triggers`` collects every Kafka trigger per function, whether it is written as a plain
AWS::Lambda::EventSourceMapping or as a SAM ``MSK`` / ``SelfManagedKafka`` event, with its settings resolved
for one cluster type; the local runner needs exactly the same view.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from devstack.template_config import channel_names, expanded_template, load_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
CHANNELS = channel_names(TEMPLATE)
SAM_FUNCTION = "AWS::Serverless::Function"
ESM = "AWS::Lambda::EventSourceMapping"


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """A template as written (``Fn::ForEach`` loops not expanded)."""
    return load_yaml(path)


def resolve(value: Any, conditions: dict[str, bool]) -> Any:
    """Pick Fn::If branches for the given condition values and drop AWS::NoValue (other intrinsics stay)."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            return resolve(when_true if conditions[name] else when_false, conditions)
        out = {}
        for key, item in value.items():
            resolved = resolve(item, conditions)
            if resolved != {"Ref": "AWS::NoValue"}:
                out[key] = resolved
        return out
    if isinstance(value, list):
        return [item for item in (resolve(v, conditions) for v in value) if item != {"Ref": "AWS::NoValue"}]
    return value


def conditions_for(cluster_type: str = "MSK", auth_mode: str = "IAM") -> dict[str, bool]:
    return {
        "IsMsk": cluster_type == "MSK",
        "IsSelfManaged": cluster_type == "SelfManaged",
        "UseJwtAuth": auth_mode == "JWT",
        "IsProd": False,
        "HasSesConfigurationSet": False,
        "HasAlarmTopic": False,
        "HasDestinationSecretPrefix": False,
    }


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == SAM_FUNCTION}


def function_environment(template: dict[str, Any], function: str, cluster_type: str = "MSK") -> dict[str, Any]:
    """Environment variables a function gets: Globals merged with its own (function values win)."""
    glob = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own = template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
    merged: dict[str, Any] = resolve({**glob, **own}, conditions_for(cluster_type))
    return merged


def kafka_triggers(template: dict[str, Any], cluster_type: str = "MSK") -> dict[str, list[dict[str, Any]]]:
    """{function logical id: [trigger settings]} with ConsumerGroupId lifted to the top level."""
    conditions = conditions_for(cluster_type)
    found: dict[str, list[dict[str, Any]]] = {}
    for name, res in template["Resources"].items():
        if res["Type"] == ESM:
            props = resolve(res["Properties"], conditions)
            target = props["FunctionName"]
            function = str(target["Ref"]) if isinstance(target, dict) else str(target)
        elif res["Type"] == SAM_FUNCTION:
            for event in res["Properties"].get("Events", {}).values():
                if event["Type"] in ("MSK", "SelfManagedKafka"):
                    props = resolve(event["Properties"], conditions)
                    found.setdefault(name, []).append({**props, "Type": event["Type"]})
            continue
        else:
            continue
        config = (
            props.get("AmazonManagedKafkaEventSourceConfig") or props.get("SelfManagedKafkaEventSourceConfig") or {}
        )
        if "ConsumerGroupId" in config:
            props["ConsumerGroupId"] = config["ConsumerGroupId"]
        found.setdefault(function, []).append({**props, "Resource": name})
    return found


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """template.yaml as CloudFormation deploys it: loops expanded."""
    return expanded_template(TEMPLATE)


@pytest.fixture(scope="session")
def samconfig() -> dict[str, Any]:
    with SAMCONFIG.open("rb") as handle:
        return tomllib.load(handle)
