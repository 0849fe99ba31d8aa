"""Identity-based IAM policy evaluation: may this role make this AWS call?

:func:`statements` turns a policy document into :class:`Statement` objects, :func:`evaluate` decides one request
(action, resource ARN, request context) against them, as the IAM User Guide documents it for identity-based policies
in one account (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html and the
pages on each element): an explicit ``Deny`` wins, else a matching ``Allow`` allows, else the request is implicitly
denied; actions match case-insensitively, ARNs case-sensitively, both with ``*`` and ``?``; a ``Condition``'s
operators AND, keys AND, values OR (NOR when negated), key names case-insensitive; a key missing from the request
fails a condition except for negated operators, ``...IfExists``, ``ForAllValues:`` and ``Null``. Supported
operators: String(Not)Equals(IgnoreCase), String(Not)Like, Arn(Not)Equals, Arn(Not)Like, Bool, Null, each (but
Null) with ``IfExists`` or ``ForAnyValue:``/``ForAllValues:``.

Not evaluated: resource-based policies, SCPs and RCPs, permissions boundaries, session policies, cross-account
requests. Rejected with :class:`PolicyError` rather than evaluated wrongly: ``Principal``, policy variables,
numeric/date/IP/binary operators, a set operator with ``IfExists``, and a multivalued key without a set operator.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EFFECTS = ("Allow", "Deny")
VERSIONS = ("2012-10-17", "2008-10-17")  # no Version means 2008-10-17 (reference_policies_elements_version.html)
_POLICY_KEYS = frozenset({"Version", "Id", "Statement"})
_STATEMENT_KEYS = frozenset({"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"})
_SET_OPERATORS = ("ForAnyValue", "ForAllValues")
_ACTION = re.compile(r"[A-Za-z0-9*?-]+:[A-Za-z0-9*?]+")


class PolicyError(ValueError):
    """A policy document this evaluator cannot evaluate exactly as AWS would (malformed, or not supported)."""


# Not moto's IAMPolicyStatement: it matches actions case-sensitively, `?`/`.` as regex, ignores NotResource.
@functools.lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """``*`` any run of characters (``/`` and ``:`` included), ``?`` any one character, everything else literal."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _like(pattern: str, value: str) -> bool:
    return _glob(pattern, False).fullmatch(value) is not None


def _arn_like(pattern: str, value: str) -> bool:
    """ArnEquals/ArnLike: each of the six colon-delimited ARN components is matched separately, with wildcards."""
    expected, actual = pattern.split(":", 5), value.split(":", 5)
    return len(expected) == len(actual) == 6 and all(map(_like, expected, actual))


_MATCHERS: dict[str, tuple[Callable[[str, str], bool], bool]] = {  # base operator -> (test(policy, request), negated)
    "StringEquals": (str.__eq__, False),
    "StringNotEquals": (str.__eq__, True),
    "StringEqualsIgnoreCase": (lambda p, v: p.casefold() == v.casefold(), False),
    "StringNotEqualsIgnoreCase": (lambda p, v: p.casefold() == v.casefold(), True),
    "StringLike": (_like, False),
    "StringNotLike": (_like, True),
    "ArnEquals": (_arn_like, False),
    "ArnLike": (_arn_like, False),
    "ArnNotEquals": (_arn_like, True),
    "ArnNotLike": (_arn_like, True),
    "Bool": (lambda p, v: p.lower() == v.lower(), False),
}


@dataclass(frozen=True)
class _Operator:
    name: str
    test: Callable[[str, str], bool]
    negated: bool = False
    if_exists: bool = False
    set_operator: str | None = None
    null_check: bool = False


@functools.cache
def _operator(name: str) -> _Operator:
    prefix, _, base = name.rpartition(":")
    if prefix and prefix not in _SET_OPERATORS:
        raise PolicyError(f"condition operator {name!r}: unknown set operator {prefix!r}")
    if base == "Null" and not prefix:
        return _Operator(name, str.__eq__, null_check=True)
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base not in _MATCHERS:
        raise PolicyError(f"condition operator {name!r} is not supported (supported: {', '.join(_MATCHERS)}, Null)")
    if prefix and if_exists:
        raise PolicyError(f"condition operator {name!r}: a set operator with IfExists is not supported")
    test, negated = _MATCHERS[base]
    return _Operator(name, test, negated, if_exists, prefix or None)


@dataclass(frozen=True)
class Statement:
    """One statement of an identity-based policy; exactly one of actions/not_actions and of resources/not_resources."""

    source: str  # where it comes from, e.g. "IngestFunctionRole/IngestFunctionRolePolicy2" or a managed policy name
    sid: str | None
    effect: str  # "Allow" | "Deny"
    actions: tuple[str, ...] = ()  # Action (or empty when NotAction is used)
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    conditions: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)  # operator -> key -> values

    def __post_init__(self) -> None:
        try:
            self._check()
        except PolicyError as error:
            raise PolicyError(
                f"{self.source}" + (f" statement {self.sid!r}" if self.sid else "") + f": {error}"
            ) from None

    def _check(self) -> None:
        if self.effect not in EFFECTS:
            raise PolicyError(f"Effect must be 'Allow' or 'Deny', not {self.effect!r}")
        if bool(self.actions) == bool(self.not_actions):
            raise PolicyError("needs exactly one of Action and NotAction, with at least one action")
        if bool(self.resources) == bool(self.not_resources):
            raise PolicyError("needs exactly one of Resource and NotResource, with at least one resource")
        for action in (*self.actions, *self.not_actions):
            if action != "*" and not _ACTION.fullmatch(action):
                raise PolicyError(f"action {action!r} is not 'service:Action' or '*'")
        for resource in (*self.resources, *self.not_resources):
            if resource != "*" and not resource.startswith("arn:"):
                raise PolicyError(f"resource {resource!r} is not an ARN or '*'")
        for operator, keys in self.conditions.items():
            _operator(operator)
            for key, values in keys.items():
                if not values:
                    raise PolicyError(f"condition {operator} {key!r} has no values")
                if operator == "Null" and any(v.lower() not in ("true", "false") for v in values):
                    raise PolicyError(f"condition Null {key!r} takes 'true' or 'false', not {values!r}")
        condition_values = (v for keys in self.conditions.values() for vs in keys.values() for v in vs)
        if any("${" in s for s in (*self.resources, *self.not_resources, *condition_values)):
            raise PolicyError("policy variables (${...}) are not supported")


def _strings(value: Any, element: str, where: str) -> tuple[str, ...]:
    """A policy element that is a string or a list of strings."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(item, str) for item in items):
        raise PolicyError(f"{where}: {element} must be a string or a non-empty list of strings, not {value!r}")
    return tuple(items)


def _condition_value(value: Any, where: str) -> str:
    if isinstance(value, bool):  # JSON true/false
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise PolicyError(f"{where}: condition value {value!r} is not a string, number or boolean")


def _conditions(value: Any, where: str) -> dict[str, dict[str, tuple[str, ...]]]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"{where}: Condition must be a mapping of operator to {{key: values}}, not {value!r}")
    conditions: dict[str, dict[str, tuple[str, ...]]] = {}
    for operator, keys in value.items():
        if not isinstance(operator, str) or not isinstance(keys, Mapping) or not keys:
            raise PolicyError(f"{where}: condition {operator!r} must map context keys to values, not {keys!r}")
        conditions[operator] = {}
        for key, values in keys.items():
            if not isinstance(key, str):
                raise PolicyError(f"{where}: condition key {key!r} is not a string")
            listed = values if isinstance(values, list) else [values]
            conditions[operator][key] = tuple(_condition_value(v, f"{where} {operator} {key}") for v in listed)
    return conditions


def statements(document: Mapping[str, Any], source: str) -> list[Statement]:
    """The statements of one identity-based policy document; PolicyError if it is malformed or not supported."""
    if not isinstance(document, Mapping):
        raise PolicyError(f"{source}: a policy document is a mapping, not {type(document).__name__}")
    if unknown := sorted(set(document) - _POLICY_KEYS):
        raise PolicyError(f"{source}: unknown policy elements {unknown}")
    if "Version" in document and document["Version"] not in VERSIONS:
        raise PolicyError(f"{source}: Version must be one of {VERSIONS}, not {document['Version']!r}")
    raw = document.get("Statement")
    listed = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(listed, list) or not listed:
        raise PolicyError(f"{source}: Statement must be a statement or a non-empty list of them, not {raw!r}")
    result: list[Statement] = []
    for index, item in enumerate(listed):
        statement = _statement(item, source, f"{source} statement #{index + 1}")
        if statement.sid is not None and any(s.sid == statement.sid for s in result):
            raise PolicyError(f"{source}: Sid {statement.sid!r} is not unique in the policy")
        result.append(statement)
    return result


def _statement(item: Any, source: str, where: str) -> Statement:
    if not isinstance(item, Mapping):
        raise PolicyError(f"{where}: a statement is a mapping, not {item!r}")
    if "Principal" in item or "NotPrincipal" in item:
        raise PolicyError(f"{where}: identity-based policies have no Principal/NotPrincipal")
    if unknown := sorted(set(item) - _STATEMENT_KEYS):
        raise PolicyError(f"{where}: unknown statement elements {unknown}")
    sid = item.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise PolicyError(f"{where}: Sid {sid!r} is not a string")
    if "Effect" not in item:
        raise PolicyError(f"{where}: missing Effect")
    for one, other in (("Action", "NotAction"), ("Resource", "NotResource")):
        if (one in item) == (other in item):
            raise PolicyError(f"{where}: needs exactly one of {one} and {other}")
    return Statement(
        source=source,
        sid=sid,
        effect=item["Effect"],
        actions=_strings(item["Action"], "Action", where) if "Action" in item else (),
        not_actions=_strings(item["NotAction"], "NotAction", where) if "NotAction" in item else (),
        resources=_strings(item["Resource"], "Resource", where) if "Resource" in item else (),
        not_resources=_strings(item["NotResource"], "NotResource", where) if "NotResource" in item else (),
        conditions=_conditions(item.get("Condition", {}), where),
    )


class Decision(enum.Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@dataclass(frozen=True)
class Evaluation:
    decision: Decision
    statements: tuple[Statement, ...]  # the Allow statements that matched (ALLOW), the Deny ones (EXPLICIT_DENY), ()

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


def _condition_holds(
    op: _Operator, key: str, expected: tuple[str, ...], context: Mapping[str, tuple[str, ...]]
) -> bool:
    actual = context.get(key.lower())  # condition key names are case-insensitive; None: missing (or no values)
    if op.null_check:  # "true": the key is absent; "false": it is present
        return any((value.lower() == "true") == (actual is None) for value in expected)
    if actual is None:
        if op.set_operator:
            return op.set_operator == "ForAllValues"
        return op.if_exists or op.negated

    def matches(value: str) -> bool:
        hit = any(op.test(policy_value, value) for policy_value in expected)  # values OR (negated: NOR)
        return hit != op.negated

    if op.set_operator == "ForAllValues":
        return all(map(matches, actual))
    if op.set_operator == "ForAnyValue":
        return any(map(matches, actual))
    if len(actual) > 1:
        raise PolicyError(f"context key {key!r} has several values; {op.name} needs ForAnyValue: or ForAllValues:")
    return matches(actual[0])


def _applies(statement: Statement, action: str, resource: str, context: Mapping[str, tuple[str, ...]]) -> bool:
    if statement.actions:
        action_ok = any(_glob(p, True).fullmatch(action) for p in statement.actions)
    else:
        action_ok = not any(_glob(p, True).fullmatch(action) for p in statement.not_actions)
    if statement.resources:
        resource_ok = any(_like(p, resource) for p in statement.resources)
    else:
        resource_ok = not any(_like(p, resource) for p in statement.not_resources)
    return (
        action_ok
        and resource_ok
        and all(
            _condition_holds(_operator(operator), key, values, context)
            for operator, keys in statement.conditions.items()
            for key, values in keys.items()
        )
    )


def evaluate(
    statements: Sequence[Statement],
    action: str,
    resource: str,
    context: Mapping[str, str | Sequence[str]] | None = None,
) -> Evaluation:
    """Decide one request (``dynamodb:GetItem`` on a table ARN, with its request context) against the statements."""
    request: dict[str, tuple[str, ...]] = {}
    for key, value in (context or {}).items():
        values = (value,) if isinstance(value, str) else tuple(value)
        if values:
            request[key.lower()] = values
    matched = [s for s in statements if _applies(s, action, resource, request)]
    if denies := tuple(s for s in matched if s.effect == "Deny"):
        return Evaluation(Decision.EXPLICIT_DENY, denies)
    if allows := tuple(s for s in matched if s.effect == "Allow"):
        return Evaluation(Decision.ALLOW, allows)
    return Evaluation(Decision.IMPLICIT_DENY, ())
