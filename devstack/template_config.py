"""What the local stack needs from ``template.yaml``: the functions, their literal environment and Kafka triggers.

The template is read expanded, as CloudFormation deploys it (``devstack.template_expansion``: ``Fn::ForEach`` loops
and literal ``Fn::FindInMap`` lookups resolved).

Kafka triggers are read from both places SAM allows: ``AWS::Lambda::EventSourceMapping`` resources (FunctionName
``!Ref``/``!GetAtt`` of a function) and ``Events`` of Type ``MSK`` / ``SelfManagedKafka`` on a function.

CloudFormation tags (``!Ref``, ``!Sub``, ``!If``, ...) load in their long form (``{"Ref": ...}``,
``{"Fn::Sub": ...}``). The local stack cannot evaluate conditions, so ``!If [condition, a, b]`` resolves to ``a``
unless ``a`` is ``AWS::NoValue`` (then ``b``): the template puts the same literal in both branches where it matters
(ConsumerGroupId). Any other intrinsic is "not literal" and left out of the environment.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from devstack.intrinsics import NO_VALUE
from devstack.template_expansion import TemplateError, expand_template, load_yaml

__all__ = [
    "CHANNEL_LOOP",
    "DEFAULT_TEMPLATE",
    "FunctionSpec",
    "HttpRoute",
    "KafkaTrigger",
    "Template",
    "TemplateError",
    "channel_names",
    "expand_template",
    "expanded_template",
    "load_template",
    "load_yaml",
]

DEFAULT_TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"

# AWS defaults for Kafka event-source mappings (CreateEventSourceMapping API reference).
DEFAULT_BATCH_SIZE = 100
DEFAULT_BATCHING_WINDOW_SECONDS = 0.5
# "When you configure both infinite retries and an on-failure destination, Lambda automatically applies a maximum
# of 10 retry attempts." (Lambda developer guide, Kafka on-failure destinations)
RETRIES_WITH_DESTINATION = 10

StartingPosition = Literal["TRIM_HORIZON", "LATEST"]


def expanded_template(path: Path = DEFAULT_TEMPLATE, parameters: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``template.yaml`` with its ``Fn::ForEach`` loops expanded (see :func:`expand_template`)."""
    return expand_template(load_yaml(path), parameters)


CHANNEL_LOOP = "Fn::ForEach::Channels"  # the Resources loop that writes every channel's resources


def channel_names(path: Path = DEFAULT_TEMPLATE) -> tuple[str, ...]:
    """The channels the template deploys: each item of its channel loop, by the Name of its Mappings.Channels row."""
    data = load_yaml(path)
    loop = (data.get("Resources") or {}).get(CHANNEL_LOOP)
    if not isinstance(loop, list) or len(loop) != 3 or not isinstance(loop[1], list):
        raise TemplateError(f"{path}: no {CHANNEL_LOOP} over a literal list of channels")
    rows = (data.get("Mappings") or {}).get("Channels") or {}
    names = []
    for entry in loop[1]:
        name = (rows.get(entry) or {}).get("Name")
        if not isinstance(name, str):
            raise TemplateError(f"{path}: channel {entry!r} has no Name in Mappings.Channels")
        names.append(name)
    return tuple(names)


def _intrinsic(value: Any) -> tuple[str, Any] | None:
    """(name, argument) of the intrinsic function ``value`` is (``{"Fn::If": x}``: ``("If", x)``), else None."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref" or (isinstance(key, str) and key.startswith("Fn::")):
            return key.removeprefix("Fn::"), argument
    return None


def resolve(value: Any) -> Any:
    """Resolve ``!If`` (first branch that is not NoValue) and ``!Ref AWS::NoValue``; other intrinsics stay."""
    match _intrinsic(value):
        case ("Ref", "AWS::NoValue"):
            return NO_VALUE
        case ("If", [_, first, second]):
            chosen = resolve(first)
            return chosen if chosen is not NO_VALUE else resolve(second)
        case (_, _):
            return value  # computed: left as it is
    if isinstance(value, dict):
        return {k: v for k, v in ((k, resolve(v)) for k, v in value.items()) if v is not NO_VALUE}
    if isinstance(value, list):
        return [v for v in map(resolve, value) if v is not NO_VALUE]
    return value


def _literal(value: Any) -> str | None:
    """An environment value as Lambda would see it, or None when the template computes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


@dataclass(frozen=True)
class KafkaTrigger:
    """One Kafka event-source mapping, with AWS's defaults for what the template leaves out."""

    name: str
    function: str
    topics: tuple[str, ...]
    consumer_group_id: str
    starting_position: StartingPosition = "TRIM_HORIZON"
    batch_size: int = DEFAULT_BATCH_SIZE
    batching_window_seconds: float = DEFAULT_BATCHING_WINDOW_SECONDS
    report_batch_item_failures: bool = False
    maximum_retry_attempts: int = -1
    maximum_record_age_seconds: int = -1
    bisect_batch_on_function_error: bool = False
    on_failure_destination: str | None = None
    enabled: bool = True

    @property
    def on_failure_topic(self) -> str | None:
        """The topic of a ``kafka://<topic>`` on-failure destination."""
        if self.on_failure_destination is None:
            return None
        return self.on_failure_destination.removeprefix("kafka://")

    @property
    def effective_retry_attempts(self) -> int:
        """MaximumRetryAttempts as Lambda applies it (-1 = infinite, capped at 10 with an on-failure destination)."""
        if self.maximum_retry_attempts == -1 and self.on_failure_destination is not None:
            return RETRIES_WITH_DESTINATION
        return self.maximum_retry_attempts


class HttpRoute(NamedTuple):
    method: str
    path: str


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_uri: Path
    handler: str
    timeout_seconds: int
    memory_mb: int
    environment: Mapping[str, str]
    kafka_triggers: tuple[KafkaTrigger, ...] = ()
    http_routes: tuple[HttpRoute, ...] = ()
    # Events of services that invoke the function asynchronously (EventBridge rules, CloudWatch Logs
    # subscriptions): "<EventName>:<Type>". Locally the function then serves Lambda's Invoke API (devstack.invoke).
    async_events: tuple[str, ...] = ()

    @property
    def handler_module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def handler_function(self) -> str:
        return self.handler.rsplit(".", 1)[1]


@dataclass(frozen=True)
class Template:
    path: Path
    functions: Mapping[str, FunctionSpec] = field(default_factory=dict)

    def function(self, logical_id: str) -> FunctionSpec:
        try:
            return self.functions[logical_id]
        except KeyError:
            known = ", ".join(sorted(self.functions))
            raise TemplateError(f"no function {logical_id!r} in {self.path} (functions: {known})") from None


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TemplateError(f"{what} must be a literal integer, got {value!r}")
    try:
        return int(value)
    except ValueError as exc:
        raise TemplateError(f"{what} must be a literal integer, got {value!r}") from exc


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TemplateError(f"{what} must be a literal string, got {value!r}")
    return value


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TemplateError(f"{what} must be a literal boolean, got {value!r}")


def _trigger(name: str, function: str, props: Mapping[str, Any]) -> KafkaTrigger:
    where = f"{name} ({function})"
    topics = props.get("Topics")
    if not isinstance(topics, list) or not topics:
        raise TemplateError(f"{where}: Topics must be a literal list")
    group = props.get("ConsumerGroupId")
    for config_key in ("AmazonManagedKafkaEventSourceConfig", "SelfManagedKafkaEventSourceConfig"):
        config = props.get(config_key)
        if group is None and isinstance(config, dict) and config.get("ConsumerGroupId") is not None:
            group = config["ConsumerGroupId"]
    position = props.get("StartingPosition", "TRIM_HORIZON")
    if position not in ("TRIM_HORIZON", "LATEST"):
        raise TemplateError(f"{where}: StartingPosition {position!r} is not supported locally (TRIM_HORIZON, LATEST)")
    destination = None
    destination_config = props.get("DestinationConfig")
    if isinstance(destination_config, dict) and isinstance(destination_config.get("OnFailure"), dict):
        destination = _str(destination_config["OnFailure"].get("Destination"), f"{where}: OnFailure.Destination")
        if not destination.startswith("kafka://"):
            raise TemplateError(f"{where}: only kafka:// on-failure destinations run locally, got {destination!r}")
    response_types = props.get("FunctionResponseTypes") or []
    window = props.get("MaximumBatchingWindowInSeconds", DEFAULT_BATCHING_WINDOW_SECONDS)
    if isinstance(window, bool) or not isinstance(window, int | float | str):
        raise TemplateError(f"{where}: MaximumBatchingWindowInSeconds must be a literal number")
    return KafkaTrigger(
        name=name,
        function=function,
        topics=tuple(_str(t, f"{where}: topic") for t in topics),
        consumer_group_id=_str(group, f"{where}: ConsumerGroupId") if group is not None else f"{function}-local",
        starting_position=position,
        batch_size=_int(props.get("BatchSize", DEFAULT_BATCH_SIZE), f"{where}: BatchSize"),
        batching_window_seconds=float(window),
        report_batch_item_failures="ReportBatchItemFailures" in response_types,
        maximum_retry_attempts=_int(props.get("MaximumRetryAttempts", -1), f"{where}: MaximumRetryAttempts"),
        maximum_record_age_seconds=_int(
            props.get("MaximumRecordAgeInSeconds", -1), f"{where}: MaximumRecordAgeInSeconds"
        ),
        bisect_batch_on_function_error=_bool(
            props.get("BisectBatchOnFunctionError", False), f"{where}: BisectBatchOnFunctionError"
        ),
        on_failure_destination=destination,
        enabled=_bool(props.get("Enabled", True), f"{where}: Enabled"),
    )


def _function_target(value: Any, functions: Sequence[str]) -> str | None:
    """The logical id a mapping's FunctionName points at (``!Ref Fn``, ``!GetAtt Fn.Arn`` or the id itself)."""
    match _intrinsic(value):
        case ("Ref", target) | ("GetAtt", [target, *_]):
            pass
        case None:
            target = value
        case _:
            return None
    return target if isinstance(target, str) and target in functions else None


def _variables(properties: Mapping[str, Any]) -> Mapping[str, Any]:
    environment = properties.get("Environment")
    variables = environment.get("Variables") if isinstance(environment, dict) else None
    return variables if isinstance(variables, dict) else {}


def load_template(path: Path = DEFAULT_TEMPLATE) -> Template:
    """Every ``AWS::Serverless::Function`` with its code, handler, literal environment and triggers."""
    data = expanded_template(path)
    resources = data.get("Resources") or {}
    raw_globals = (data.get("Globals") or {}).get("Function") or {}
    globals_function = resolve(raw_globals)
    global_env = _variables(raw_globals)
    function_ids = [rid for rid, res in resources.items() if (res or {}).get("Type") == "AWS::Serverless::Function"]

    triggers: dict[str, list[KafkaTrigger]] = {fid: [] for fid in function_ids}
    routes: dict[str, list[HttpRoute]] = {fid: [] for fid in function_ids}
    async_events: dict[str, list[str]] = {fid: [] for fid in function_ids}
    for rid, resource in resources.items():
        if (resource or {}).get("Type") != "AWS::Lambda::EventSourceMapping":
            continue
        props = resolve(resource.get("Properties") or {})
        if "Topics" not in props:
            continue  # not a Kafka mapping
        target = _function_target(props.get("FunctionName"), function_ids)
        if target is None:
            raise TemplateError(f"{rid}: FunctionName does not name a function of this template")
        triggers[target].append(_trigger(rid, target, props))

    functions: dict[str, FunctionSpec] = {}
    for fid in function_ids:
        props = resolve(resources[fid].get("Properties") or {})
        for event_name, event in (props.get("Events") or {}).items():
            kind = (event or {}).get("Type")
            event_props = (event or {}).get("Properties") or {}
            if kind in ("MSK", "SelfManagedKafka"):
                triggers[fid].append(_trigger(f"{fid}.{event_name}", fid, event_props))
            elif kind in ("HttpApi", "Api"):
                routes[fid].append(
                    HttpRoute(str(event_props.get("Method", "ANY")).upper(), str(event_props.get("Path", "/")))
                )
            elif kind in ("EventBridgeRule", "CloudWatchEvent", "CloudWatchLogs"):
                async_events[fid].append(f"{event_name}:{kind}")
        # Unresolved on purpose: a value chosen by a condition (!If) is computed, not literal.
        env_vars = {**global_env, **_variables(resources[fid].get("Properties") or {})}
        environment = {k: v for k, v in ((k, _literal(v)) for k, v in env_vars.items()) if v is not None}
        code_uri = props.get("CodeUri", globals_function.get("CodeUri"))
        handler = props.get("Handler", globals_function.get("Handler"))
        if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
            raise TemplateError(f"{fid}: CodeUri and Handler must be literal (module.function)")
        functions[fid] = FunctionSpec(
            logical_id=fid,
            code_uri=(path.parent / code_uri).resolve(),
            handler=handler,
            timeout_seconds=_int(props.get("Timeout", globals_function.get("Timeout", 3)), f"{fid}: Timeout"),
            memory_mb=_int(props.get("MemorySize", globals_function.get("MemorySize", 128)), f"{fid}: MemorySize"),
            environment=environment,
            kafka_triggers=tuple(triggers[fid]),
            http_routes=tuple(routes[fid]),
            async_events=tuple(async_events[fid]),
        )
    return Template(path=path, functions=functions)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the expanded template as JSON (``make test`` scans it with checkov, which cannot expand Fn::ForEach)."""
    parser = argparse.ArgumentParser(prog="python -m devstack.template_config", description=main.__doc__)
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(expanded_template(args.template), indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
