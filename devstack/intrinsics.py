"""CloudFormation's intrinsic functions and conditions, evaluated with the values of one deployment.

The roles the local stack reads from the translated template (``devstack.iam.roles``) are written with ``Ref``,
``Fn::GetAtt``, ``Fn::Sub``, ``Fn::Join``, ``Fn::Split``, ``Fn::Select``, ``Fn::If``, ``Fn::FindInMap`` and the
condition functions, evaluated here as the "Intrinsic function reference" documents them
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference.html); ``Ref
AWS::NoValue`` removes the property or item it stands for. SAM CLI's resolver (``samcli.lib.intrinsic_resolver``)
refuses ``!If [cond, x, !Ref AWS::NoValue]``, which this template uses throughout. What a resource's ``Ref`` and
attributes are is the caller's (``Physical``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NO_VALUE", "SUB_VARIABLE", "IntrinsicError", "Physical", "Resolver", "parameter_defaults"]


class IntrinsicError(ValueError):
    """An intrinsic function that cannot be evaluated (unknown name, wrong arguments)."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()
# A Fn::Sub variable: ${Name} or ${Resource.Attribute}; ${!Name} is the escape for a literal "${Name}".
SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, Any]:
    """The Default of each of the template's parameters that has one."""
    declared = template.get("Parameters") or {}
    return {name: spec["Default"] for name, spec in declared.items() if isinstance(spec, dict) and "Default" in spec}


@dataclass(frozen=True)
class Physical:
    """What a resource's ``Ref`` and ``Fn::GetAtt`` evaluate to: ``refs[logical_id]``, ``attributes[(id, name)]``,
    else ``default(logical_id, attribute)`` (attribute None for ``Ref``)."""

    refs: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    default: Callable[[str, str | None], str] | None = None

    def ref(self, logical_id: str) -> str:
        if logical_id in self.refs:
            return self.refs[logical_id]
        if self.default is not None:
            return self.default(logical_id, None)
        raise IntrinsicError(f"Ref {logical_id}: no physical id known")

    def attribute(self, logical_id: str, name: str) -> str:
        if (logical_id, name) in self.attributes:
            return self.attributes[(logical_id, name)]
        if self.default is not None:
            return self.default(logical_id, name)
        raise IntrinsicError(f"Fn::GetAtt {logical_id}.{name}: not known")


class Resolver:
    """Evaluates a template's values for one set of parameters (pseudo parameters included: ``AWS::Region``)."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, Any], physical: Physical) -> None:
        self._template = template
        self._parameters: dict[str, Any] = {**parameter_defaults(template), **parameters}
        self._physical = physical
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            definitions = self._template.get("Conditions") or {}
            if name not in definitions:
                raise IntrinsicError(f"no condition {name!r}")
            self._conditions[name] = bool(self._condition_value(definitions[name]))
        return self._conditions[name]

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic evaluated; ``NO_VALUE`` when it is ``!Ref AWS::NoValue`` itself."""
        if isinstance(value, dict):
            if len(value) == 1:
                (key, argument), *_ = value.items()
                if key == "Ref" or (isinstance(key, str) and key.startswith("Fn::")) or key == "Condition":
                    return self._function(key, argument)
            resolved = {k: self.resolve(v) for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not NO_VALUE}
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not NO_VALUE]
        return value

    # -- functions ---------------------------------------------------------------

    def _function(self, name: str, argument: Any) -> Any:
        handler = getattr(self, "_fn_" + name.removeprefix("Fn::").lower(), None)
        if handler is None:
            raise IntrinsicError(f"{name} is not supported")
        return handler(argument)

    def _fn_ref(self, name: Any) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if not isinstance(name, str):
            raise IntrinsicError(f"Ref needs a name, got {name!r}")
        if name in self._parameters:
            return self._parameters[name]
        if name in (self._template.get("Resources") or {}):
            return self._physical.ref(name)
        raise IntrinsicError(f"Ref {name}: no such parameter or resource")

    def _fn_getatt(self, argument: Any) -> str:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        if not isinstance(argument, list) or len(argument) != 2:
            raise IntrinsicError(f"Fn::GetAtt needs [LogicalId, Attribute], got {argument!r}")
        logical_id, attribute = (self.resolve(a) for a in argument)
        return self._physical.attribute(str(logical_id), str(attribute))

    def _fn_sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        values = {k: self.resolve(v) for k, v in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in values:
                return str(values[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return self._physical.attribute(logical_id, attribute)
            return str(self._fn_ref(name))

        return SUB_VARIABLE.sub(substitute, text).replace("${!", "${")

    def _fn_join(self, argument: Any) -> str:
        delimiter, items = argument
        return str(delimiter).join(str(item) for item in self.resolve(items))

    def _fn_split(self, argument: Any) -> list[str]:
        delimiter, text = argument
        return str(self.resolve(text)).split(str(delimiter))

    def _fn_select(self, argument: Any) -> Any:
        index, items = argument
        return self.resolve(items)[int(self.resolve(index))]

    def _fn_if(self, argument: Any) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(name) else when_false)

    def _fn_findinmap(self, argument: Any) -> Any:
        mapping, first, second, *options = (self.resolve(a) for a in argument)
        table = (self._template.get("Mappings") or {}).get(mapping) or {}
        row = table.get(first) or {}
        if second in row:
            return row[second]
        if options and isinstance(options[0], dict) and "DefaultValue" in options[0]:
            return options[0]["DefaultValue"]
        raise IntrinsicError(f"Fn::FindInMap {mapping}.{first}.{second}: not in the mapping")

    # -- conditions --------------------------------------------------------------

    def _condition_value(self, value: Any) -> Any:
        return self.resolve(value)

    def _fn_equals(self, argument: Any) -> bool:
        left, right = (self.resolve(a) for a in argument)
        return bool(left == right or str(left) == str(right))

    def _fn_not(self, argument: Any) -> bool:
        return not self._truth(argument[0])

    def _fn_and(self, argument: Any) -> bool:
        return all(self._truth(a) for a in argument)

    def _fn_or(self, argument: Any) -> bool:
        return any(self._truth(a) for a in argument)

    def _fn_condition(self, name: Any) -> bool:
        return self.condition(str(name))

    def _truth(self, value: Any) -> bool:
        resolved = self.resolve(value)
        if not isinstance(resolved, bool):
            raise IntrinsicError(f"a condition must be true or false, got {resolved!r}")
        return resolved
