"""template.yaml read as CloudFormation reads it: YAML with short tags, then the ``AWS::LanguageExtensions`` transform.

:func:`expand_template` expands ``Fn::ForEach`` with SAM CLI's own implementation of the transform
(``samcli.lib.cfn_language_extensions``, which runs offline, without AWS credentials), then resolves what the
transform resolves without parameter values: ``Fn::FindInMap`` with literal keys (or its ``DefaultValue``) and
``Fn::Sub`` over literal values. AWS docs (CloudFormation template reference): "Fn::ForEach",
"Fn::FindInMap enhancements", "AWS::LanguageExtensions transform", "Fn::Sub".
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from samcli.lib.cfn_language_extensions.exceptions import InvalidTemplateException  # type: ignore[import-untyped]
from samcli.lib.cfn_language_extensions.models import TemplateProcessingContext  # type: ignore[import-untyped]
from samcli.lib.cfn_language_extensions.processors import (  # type: ignore[import-untyped]
    ForEachProcessor,
    TemplateParsingProcessor,
)
from samcli.lib.cfn_language_extensions.resolvers import (  # type: ignore[import-untyped]
    FnRefResolver,
    IntrinsicResolver,
)

from devstack.intrinsics import SUB_VARIABLE, parameter_defaults


class TemplateError(ValueError):
    """template.yaml is not a template CloudFormation, or the local stack, can use."""


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns every ``!Tag`` into its long form (``!Ref X`` -> ``{"Ref": "X"}``)."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_yaml(path: Path) -> dict[str, Any]:
    """The template as written, intrinsic functions in their long (JSON) form.

    YAML aliases (``*name``) and merge keys (``<<: *name``) are resolved here, as SAM CLI resolves them before
    CloudFormation sees the template (CloudFormation itself reads neither: AWS doc "CloudFormation template format",
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-formats.html).
    """
    with path.open(encoding="utf-8") as handle:
        data = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass with one extra constructor
    if not isinstance(data, dict):
        raise TemplateError(f"{path} is not a CloudFormation template")
    return data


LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
_EXPANDED_SECTIONS = ("Conditions", "Resources", "Outputs")  # where Fn::ForEach may appear (AWS doc: Fn::ForEach)


def _transforms(data: Mapping[str, Any]) -> list[Any]:
    declared = data.get("Transform") or []
    return list(declared) if isinstance(declared, list) else [declared]


def _has_for_each(value: Any) -> bool:
    if isinstance(value, dict):
        return any(str(k).startswith("Fn::ForEach::") or _has_for_each(v) for k, v in value.items())
    return isinstance(value, list) and any(map(_has_for_each, value))


def _simplify_sub(value: Any) -> Any:
    """``Fn::Sub`` with its literal variables written in; a plain string once no variable is left."""
    template, variables = (value, {}) if isinstance(value, str) else (value[0], dict(value[1]))
    if not isinstance(template, str):
        return {"Fn::Sub": value}
    for name, literal in list(variables.items()):
        if isinstance(literal, str) and "${" not in literal:
            template = template.replace("${" + name + "}", literal)
            del variables[name]
    used = {name: variables[name] for name in SUB_VARIABLE.findall(template) if name in variables}
    if not SUB_VARIABLE.search(template):
        return template.replace("${!", "${")
    return {"Fn::Sub": [template, used] if used else template}


def _find_in_map(args: Any, mappings: Mapping[str, Any]) -> Any:
    """The looked-up value (or DefaultValue); None where a key needs a parameter value (CloudFormation's to do)."""
    if not isinstance(args, list) or len(args) not in (3, 4):
        raise TemplateError(f"Fn::FindInMap needs 3 or 4 arguments, got {args!r}")
    keys, options = args[:3], args[3] if len(args) == 4 else {}
    if not all(isinstance(key, str) for key in keys):
        return None
    found = (mappings.get(keys[0]) or {}).get(keys[1], {}).get(keys[2])
    if found is not None:
        return copy.deepcopy(found)
    if isinstance(options, dict) and "DefaultValue" in options:
        return options["DefaultValue"]
    raise TemplateError(f"Fn::FindInMap: no value for {keys!r} in Mappings")


def _resolve_static(value: Any, mappings: Mapping[str, Any]) -> Any:
    """Resolve ``Fn::FindInMap`` and simplify ``Fn::Sub``, arguments first (a lookup may take a lookup's result)."""
    if isinstance(value, list):
        return [_resolve_static(item, mappings) for item in value]
    if not isinstance(value, dict):
        return value
    resolved = {key: _resolve_static(item, mappings) for key, item in value.items()}
    if len(resolved) == 1 and "Fn::FindInMap" in resolved:
        found = _find_in_map(resolved["Fn::FindInMap"], mappings)
        return resolved if found is None else _resolve_static(found, mappings)
    if len(resolved) == 1 and "Fn::Sub" in resolved:
        return _simplify_sub(resolved["Fn::Sub"])
    return resolved


def expand_template(data: Mapping[str, Any], parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The template as ``AWS::LanguageExtensions`` hands it on to SAM, as far as it does not need parameter values.

    ``Fn::ForEach`` loops are expanded in Conditions, Resources and Outputs, a collection ``Ref`` to a
    CommaDelimitedList taking the parameter's value from ``parameters`` or its Default. A template that does not
    declare the transform comes back unchanged (and may not use ``Fn::ForEach``).
    """
    transforms = _transforms(data)
    if LANGUAGE_EXTENSIONS not in transforms:
        if any(_has_for_each(data.get(section)) for section in _EXPANDED_SECTIONS):
            raise TemplateError(f"Fn::ForEach needs the {LANGUAGE_EXTENSIONS} transform")
        return copy.deepcopy(dict(data))
    context = TemplateProcessingContext(
        fragment=copy.deepcopy(dict(data)), parameter_values={**parameter_defaults(data), **(parameters or {})}
    )
    collections = IntrinsicResolver(context)
    collections.register_resolver(FnRefResolver)
    try:
        TemplateParsingProcessor().process_template(context)
        ForEachProcessor(intrinsic_resolver=collections).process_template(context)
    except InvalidTemplateException as exc:
        raise TemplateError(f"AWS::LanguageExtensions: {exc}") from exc
    expanded: dict[str, Any] = context.fragment
    mappings = expanded.get("Mappings") or {}
    for section in _EXPANDED_SECTIONS:
        if section in expanded:
            expanded[section] = _resolve_static(expanded[section], mappings)
    remaining = [name for name in transforms if name != LANGUAGE_EXTENSIONS]
    if remaining:
        expanded["Transform"] = remaining
    else:
        expanded.pop("Transform", None)
    return expanded
