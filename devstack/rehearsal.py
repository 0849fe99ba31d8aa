"""A deploy rehearsal per samconfig.toml environment: what `sam deploy --config-env ENV` does before CloudFormation.

    .venv/bin/python -m devstack.rehearsal [--env dev ...] [--accept]

Lint, one build, ``sam package`` to moto's S3 in this process, the packaged template expanded and translated with
the environment's overrides, CloudFormation's own checks (quotas, references: the CloudFormation User Guide's
"CloudFormation quotas", https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html,
and the pages of each intrinsic) and the reviewed snapshot ``tests/template/snapshots/<env>.json``, as
docs/deploy.md ("What is rehearsed before a deploy") lists them. Nothing reaches AWS: sam gets dummy credentials.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from devstack.aws_resources import moto_server
from devstack.iam.roles import translate, with_placeholder_code
from devstack.intrinsics import SUB_VARIABLE
from devstack.template_expansion import expand_template, load_yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
SNAPSHOTS = ROOT / "tests" / "template" / "snapshots"
ACCEPT = ".venv/bin/python -m devstack.rehearsal --accept"
BUCKET = "artifacts"  # the local bucket `sam package` uploads to
PLACEHOLDER_BUCKET = "<artifacts>"  # code locations in a snapshot: s3://<artifacts>/<LogicalId>
DIFF_LINES = 80  # a snapshot diff is cut here

# AWS doc "CloudFormation quotas" (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html)
QUOTAS = {"Resources": 500, "Parameters": 200, "Outputs": 200, "Mappings": 200}
# "Template body size in an Amazon S3 object": 1 MB. `sam deploy` uploads the packaged template to S3 (51,200 bytes
# is the limit of a body passed in the request itself). cfn-lint counts 1 MB as 1,000,000 bytes, and so do we.
MAX_BODY_BYTES = 1_000_000
# AWS doc "Pseudo parameters reference".
_PSEUDO = ("AccountId", "NotificationARNs", "NoValue", "Partition", "Region", "StackId", "StackName", "URLSuffix")
PSEUDO_PARAMETERS = frozenset(f"AWS::{name}" for name in _PSEUDO)


class RehearsalError(RuntimeError):
    """A step of the rehearsal failed, or CloudFormation would refuse the template: the message says where."""


# ------------------------------------------------------------------ environments (samconfig.toml)


@dataclass(frozen=True)
class Environment:
    """What `sam deploy --config-env <name>` hands CloudFormation besides the template."""

    name: str
    stack_name: str
    region: str
    s3_prefix: str
    capabilities: tuple[str, ...]
    tags: str
    parameters: dict[str, str] = field(default_factory=dict)  # parameter_overrides

    def summary(self) -> dict[str, Any]:
        return {
            "StackName": self.stack_name,
            "Region": self.region,
            "Capabilities": list(self.capabilities),
            "Tags": self.tags,
            "ParameterOverrides": self.parameters,
        }


def _words(value: str | list[str]) -> list[str]:
    """A samconfig value that SAM CLI accepts as one string of words or as a list."""
    return shlex.split(value) if isinstance(value, str) else [str(item) for item in value]


def environments(samconfig: Path = SAMCONFIG) -> dict[str, Environment]:
    """Every environment with deploy parameters, by name; one that repeats another entirely is left out."""
    with samconfig.open("rb") as handle:
        config = tomllib.load(handle)
    deployable = [name for name, table in config.items() if isinstance(table, dict) and "deploy" in table]
    found: dict[str, Environment] = {}
    for name in sorted(deployable, key=lambda n: n == "default"):  # a named copy wins over `default`
        if any(config[name] == config[other] for other in found):
            continue
        table = config[name]
        settings = {**table.get("global", {}).get("parameters", {}), **table["deploy"]["parameters"]}
        overrides = (item.partition("=") for item in _words(settings.get("parameter_overrides", [])))
        found[name] = Environment(
            name=name,
            stack_name=settings["stack_name"],
            region=settings["region"],
            s3_prefix=settings.get("s3_prefix", ""),
            capabilities=tuple(_words(settings.get("capabilities", []))),
            tags=settings.get("tags", ""),
            parameters={key: value for key, _, value in overrides},
        )
    return found


# ------------------------------------------------------------------ sam and the local S3


def sam_environment(**extra: str) -> dict[str, str]:
    """Environment of a sam subprocess: no telemetry, dummy credentials, this venv's Python first on PATH."""
    env = {key: value for key, value in os.environ.items() if key not in ("AWS_PROFILE", "AWS_SESSION_TOKEN")}
    env.update(
        SAM_CLI_TELEMETRY="0",
        SAM_CLI_CONTAINER_CONNECTION_TIMEOUT="1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - nothing reaches AWS
        NO_PROXY=",".join(filter(None, [env.get("NO_PROXY"), "127.0.0.1"])),
        **extra,
    )
    # sam runs `make` for the layers, and the layers' Makefiles run `python3 -m pip`: this venv's Python.
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def sam_executable() -> str:
    for candidate in (ROOT / ".venv" / "bin" / "sam", shutil.which("sam")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise RehearsalError("SAM CLI not installed: run `make install` (aws-sam-cli is a dev dependency)")


def run_sam(what: str, args: Sequence[str | Path], env: Mapping[str, str] | None = None) -> None:
    """Run sam from the repository root; a failure names the step and ends with sam's own output."""
    result = subprocess.run(
        [sam_executable(), *map(str, args)],
        cwd=ROOT,
        env=dict(env or sam_environment()),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise RehearsalError(f"{what} failed (exit {result.returncode}):\n{output[-4000:]}")


def lint(env: Environment) -> None:
    """`sam validate --lint` (cfn-lint) with the environment's samconfig settings."""
    config: list[str | Path] = ["--config-file", SAMCONFIG, "--config-env", env.name]
    run_sam(f"{env.name}: sam validate --lint", ["validate", "--lint", "--template-file", TEMPLATE, *config])


def build(build_dir: Path, cache_dir: Path) -> Path:
    """One `sam build` for every environment (their build settings are the same); the built template."""
    where: list[str | Path] = ["--template-file", TEMPLATE, "--config-file", SAMCONFIG, "--build-dir", build_dir]
    run_sam("sam build", ["build", *where, "--cache-dir", cache_dir, "--cached", "--parallel"])
    return build_dir / "template.yaml"


class LocalS3:
    """moto's S3 in this process on 127.0.0.1 (a free port), with the artifacts bucket `sam package` uploads to."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._running = contextlib.ExitStack()
        self.endpoint = ""

    def __enter__(self) -> LocalS3:
        self.endpoint = self._running.enter_context(moto_server())
        location = {} if self.region == "us-east-1" else {"LocationConstraint": self.region}
        self.client().create_bucket(Bucket=BUCKET, CreateBucketConfiguration=location)
        return self

    def __exit__(self, *_: object) -> None:
        self._running.close()

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
        )

    def keys(self) -> set[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}


def package(env: Environment, built: Path, s3: LocalS3, output: Path) -> Path:
    """`sam package` as `sam deploy --config-env` runs it (the environment's S3 prefix), to the local bucket."""
    output.parent.mkdir(parents=True, exist_ok=True)
    args: list[str | Path] = ["package", "--template-file", built, "--config-file", SAMCONFIG, "--config-env", env.name]
    args += ["--s3-bucket", BUCKET, "--s3-prefix", env.s3_prefix, "--output-template-file", output]
    run_sam(
        f"{env.name}: sam package", args, sam_environment(AWS_ENDPOINT_URL=s3.endpoint, AWS_ENDPOINT_URL_S3=s3.endpoint)
    )
    return output


# ------------------------------------------------------------------ what CloudFormation receives


def translation(template: Path, env: Environment, *, placeholders: bool = False) -> dict[str, Any]:
    """The template as CloudFormation's transforms turn it into resources, with this environment's parameters.

    With ``placeholders`` every function's and layer's code is at ``s3://<artifacts>/<LogicalId>`` (a snapshot's
    form: the same whatever the code).
    """
    expanded = expand_template(load_yaml(template), env.parameters)
    if placeholders:
        expanded = with_placeholder_code(expanded, PLACEHOLDER_BUCKET)
    return translate(expanded, env.parameters, env.region)


def code_locations(packaged: Path, env: Environment) -> dict[str, str]:
    """{function or layer logical id: the S3 URI `sam package` wrote for its code}, loops expanded."""
    resources = expand_template(load_yaml(packaged), env.parameters).get("Resources") or {}
    kinds = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}
    return {
        name: str(res["Properties"].get(kinds[res["Type"]]))
        for name, res in resources.items()
        if res.get("Type") in kinds
    }


def check_code(env: Environment, code: Mapping[str, str], uploaded: set[str]) -> None:
    """Every function's and layer's code is an object `sam package` uploaded under the environment's prefix."""
    prefix = f"s3://{BUCKET}/{env.s3_prefix}/" if env.s3_prefix else f"s3://{BUCKET}/"
    wrong = [
        f"{env.name}: Resources.{name}: code at {uri!r}, not an object uploaded under {prefix}"
        for name, uri in sorted(code.items())
        if not uri.startswith(prefix) or uri.removeprefix(f"s3://{BUCKET}/") not in uploaded
    ]
    if wrong:
        raise RehearsalError("\n".join(wrong))


def quota_problems(template: Mapping[str, Any], body_size: int) -> list[str]:
    """What exceeds CloudFormation's template quotas (AWS doc: CloudFormation quotas)."""
    problems = [
        f"{section}: {len(template[section])} declared, CloudFormation allows {limit} (CloudFormation quotas)"
        for section, limit in QUOTAS.items()
        if len(template.get(section) or {}) > limit
    ]
    if body_size > MAX_BODY_BYTES:
        problems.append(
            f"template body: {body_size:,} bytes, CloudFormation reads at most 1 MB from S3 (CloudFormation quotas)"
        )
    return problems


def _references(value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(path, function, name) of every Ref, Fn::GetAtt, Fn::Sub variable and Fn::If condition under ``value``."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from _references(item, f"{path}[{index}]")
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        here = f"{path}.{key}"
        if key == "Ref":
            yield here, key, item
        elif key == "Fn::GetAtt":
            yield here, key, item.split(".", 1)[0] if isinstance(item, str) else item[0]
        elif key == "Fn::Sub":
            text, variables = (item, {}) if isinstance(item, str) else (item[0], item[1])
            for name in SUB_VARIABLE.findall(text if isinstance(text, str) else ""):
                if name not in variables:
                    yield here, key, name
        elif key == "Fn::If" and isinstance(item, list) and item:
            yield here, key, item[0]
        yield from _references(item, here)


def _unknown(function: str, name: Any, visible: set[str], parameters: set[str], conditions: set[str]) -> str | None:
    """Why CloudFormation would refuse this reference, or None."""
    if not isinstance(name, str):
        return f"{function} needs a literal name, got {json.dumps(name)}"
    if function == "Fn::If":
        return None if name in conditions else f"condition {name!r} is not declared in Conditions"
    if function == "Fn::GetAtt" or "." in name:  # ${Resource.Attribute} in Fn::Sub is a GetAtt
        return None if name.split(".", 1)[0] in visible else f"{function} {name!r} names no resource"
    if name in visible or name in parameters:
        return None
    return f"{function} {name!r} names no resource, parameter or pseudo parameter"


def reference_problems(template: Mapping[str, Any]) -> list[str]:
    """References CloudFormation would refuse: to no resource, parameter, pseudo parameter or condition."""
    resources = set(template.get("Resources") or {})
    parameters = set(template.get("Parameters") or {}) | PSEUDO_PARAMETERS
    conditions = set(template.get("Conditions") or {})
    problems = []
    for section in ("Conditions", "Rules", "Resources", "Outputs"):
        # Conditions and Rules may only use parameters (AWS docs: Conditions syntax, Rules syntax)
        visible = resources if section in ("Resources", "Outputs") else set()
        for path, function, name in _references(template.get(section) or {}, section):
            if (problem := _unknown(function, name, visible, parameters, conditions)) is not None:
                problems.append(f"{path}: {problem}")
    for section in ("Resources", "Outputs"):
        for name, entry in (template.get(section) or {}).items():
            condition = entry.get("Condition")
            if condition is not None and condition not in conditions:
                problems.append(f"{section}.{name}.Condition: {condition!r} is not declared in Conditions")
            depends = entry.get("DependsOn", []) if section == "Resources" else []
            problems += [
                f"{section}.{name}.DependsOn: {target!r} is no resource of the template"
                for target in ([depends] if isinstance(depends, str) else depends)
                if target not in resources
            ]
    return problems


def check(env: str, template: Mapping[str, Any], body_size: int) -> None:
    """Raise, naming the environment and every culprit, where CloudFormation would refuse the translated template."""
    problems = quota_problems(template, body_size) + reference_problems(template)
    if problems:
        raise RehearsalError("\n".join(f"{env}: {problem}" for problem in problems))


# ------------------------------------------------------------------ snapshots


def snapshot(env: Environment, reviewed: Mapping[str, Any]) -> str:
    """The snapshot text: the deploy settings and the translated template (code at placeholders), keys sorted."""
    return json.dumps({**env.summary(), "Template": reviewed}, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def snapshot_diff(env: str, text: str, snapshots: Path = SNAPSHOTS) -> str | None:
    """None if ``text`` is the reviewed snapshot; else a unified diff (cut to DIFF_LINES) and how to accept it."""
    path = snapshots / f"{env}.json"
    reviewed = path.read_text(encoding="utf-8") if path.exists() else ""
    if reviewed == text:
        return None
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    lines = list(
        difflib.unified_diff(reviewed.splitlines(), text.splitlines(), f"{env}.json", f"{env} now", lineterm="")
    )
    cut = lines[:DIFF_LINES] + ([f"... {len(lines) - DIFF_LINES} more diff lines"] if len(lines) > DIFF_LINES else [])
    header = f"{env}: the translated template is not the reviewed snapshot {shown}" + ("" if reviewed else " (none)")
    return "\n".join([header, *cut, f"If the change is intended, accept it: {ACCEPT}"])


# ------------------------------------------------------------------ the rehearsal


@dataclass(frozen=True)
class Rehearsal:
    """One environment rehearsed: sam's outcomes and what CloudFormation would receive."""

    environment: Environment
    lint_failure: str | None  # sam validate --lint's output when it failed
    packaged: Path  # the template sam deploy would upload
    body_size: int  # its size in bytes
    code: dict[str, str]  # logical id -> S3 URI of its code
    translated: dict[str, Any]  # with the real code locations
    snapshot: str


@dataclass(frozen=True)
class Rehearsals:
    build_dir: Path
    uploaded: set[str]  # every key in the local bucket
    environments: dict[str, Rehearsal]


def _lint_failure(env: Environment) -> str | None:
    try:
        lint(env)
    except RehearsalError as exc:
        return str(exc)
    return None


def findings(done: Rehearsal, uploaded: set[str]) -> list[str]:
    """What one environment's rehearsal found wrong (its snapshot aside): lint, code locations, template checks."""
    found = [done.lint_failure] if done.lint_failure else []
    try:
        check_code(done.environment, done.code, uploaded)
    except RehearsalError as exc:
        found.append(str(exc))
    try:
        check(done.environment.name, done.translated, done.body_size)
    except RehearsalError as exc:
        found.append(str(exc))
    return found


def rehearse(envs: Sequence[Environment], workdir: Path) -> Rehearsals:
    """Lint (concurrently with the build), build once, package and translate every environment."""
    with ThreadPoolExecutor(max_workers=2 * len(envs)) as pool:
        lints = {env.name: pool.submit(_lint_failure, env) for env in envs}
        built = build(workdir / "build", workdir / "cache")
        with LocalS3(envs[0].region) as s3:
            packaging = {
                env.name: pool.submit(package, env, built, s3, workdir / env.name / "packaged.yaml") for env in envs
            }
            packaged = {name: future.result() for name, future in packaging.items()}
            uploaded = s3.keys()
        done = {
            env.name: Rehearsal(
                environment=env,
                lint_failure=lints[env.name].result(),
                packaged=packaged[env.name],
                body_size=packaged[env.name].stat().st_size,
                code=code_locations(packaged[env.name], env),
                translated=translation(packaged[env.name], env),
                snapshot=snapshot(env, translation(packaged[env.name], env, placeholders=True)),
            )
            for env in envs
        }
    return Rehearsals(workdir / "build", uploaded, done)


def main(argv: Sequence[str] | None = None) -> int:
    known = environments()
    parser = argparse.ArgumentParser(prog="python -m devstack.rehearsal", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--env", action="append", choices=list(known), help="rehearse only this one (repeatable)")
    parser.add_argument("--accept", action="store_true", help=f"write the snapshots to {SNAPSHOTS.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # it warns of metrics it never means to publish
    envs = [known[name] for name in args.env or known]
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rehearsal-") as workdir:
        rehearsals = rehearse(envs, Path(workdir))
        for name, done in rehearsals.environments.items():
            failures += findings(done, rehearsals.uploaded)
            if args.accept:
                SNAPSHOTS.mkdir(parents=True, exist_ok=True)
                (SNAPSHOTS / f"{name}.json").write_text(done.snapshot, encoding="utf-8")
            elif (diff := snapshot_diff(name, done.snapshot)) is not None:
                failures.append(diff)
            size = done.body_size
            print(f"{name}: {len(done.translated['Resources'])} resources, packaged template {size:,} bytes")
    print("\n\n".join(failures) if failures else f"rehearsed: {', '.join(env.name for env in envs)}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
