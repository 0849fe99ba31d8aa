"""The deploy rehearsal (devstack.rehearsal): per samconfig.toml environment, what `sam deploy` does up to CloudFormation.

One session rehearses every environment (`sam validate --lint` each, one `sam build`, `sam package` each to moto's
S3, expansion and SAM translation of the packaged template) and the tests read its outcome; the checks CloudFormation
makes are then shown to fail on broken copies of template.yaml, translated in memory (no sam).
`sam build` needs PyPI (or a pip index) for the dependencies layer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devstack import rehearsal
from devstack.rehearsal import RehearsalError
from devstack.template_expansion import expand_template, load_yaml
from tests.template.conftest import TEMPLATE, functions

ENVIRONMENTS = rehearsal.environments()
DEV = ENVIRONMENTS["dev"]
CODE_TYPES = {"AWS::Lambda::Function": "Code", "AWS::Lambda::LayerVersion": "Content"}


@pytest.fixture(scope="session")
def rehearsed(tmp_path_factory: pytest.TempPathFactory) -> rehearsal.Rehearsals:
    return rehearsal.rehearse(list(ENVIRONMENTS.values()), tmp_path_factory.mktemp("rehearsal"))


# ------------------------------------------------------------------ the environments rehearsed


def test_every_environment_sam_deploy_can_deploy_is_rehearsed(samconfig: dict[str, Any]) -> None:
    # Given the environments of samconfig.toml that have deploy parameters
    deployable = {name for name, table in samconfig.items() if isinstance(table, dict) and "deploy" in table}
    # Then each is rehearsed, but `default`: it repeats dev in every section, so dev's rehearsal is its own
    assert set(ENVIRONMENTS) == deployable - {"default"} == {"dev", "staging", "prod"}
    assert samconfig["default"] == samconfig["dev"]
    prod = ENVIRONMENTS["prod"]
    assert (prod.stack_name, prod.region, prod.s3_prefix) == (
        "purchase-notifications-prod",
        "eu-central-1",
        "purchase-notifications-prod",
    )
    assert prod.capabilities == ("CAPABILITY_IAM",)
    assert prod.parameters["OffsetLagThreshold"] == "5000"


def test_a_default_that_differs_from_every_other_environment_is_rehearsed_too(tmp_path: Path) -> None:
    # Given a samconfig whose default is its own, with overrides written as one string (SAM CLI accepts both forms)
    config = tmp_path / "samconfig.toml"
    config.write_text(
        'version = 0.1\n[default.global.parameters]\nstack_name = "s"\nregion = "eu-west-1"\n'
        '[default.deploy.parameters]\nparameter_overrides = "A=1 B=\'two words\'"\ncapabilities = "CAPABILITY_IAM"\n'
        '[dev.global.parameters]\nstack_name = "d"\nregion = "eu-west-1"\n[dev.deploy.parameters]\n'
        '[local.global.parameters]\nregion = "us-east-1"\n',
        encoding="utf-8",
    )
    # Then both are rehearsed (default's overrides parsed), the one without deploy parameters is not
    found = rehearsal.environments(config)
    assert set(found) == {"default", "dev"}
    assert found["default"].parameters == {"A": "1", "B": "two words"}
    assert found["default"].capabilities == ("CAPABILITY_IAM",)


# ------------------------------------------------------------------ sam validate, build, package (one session)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_sam_validate_lint_passes(rehearsed: rehearsal.Rehearsals, env: str) -> None:
    failure = rehearsed.environments[env].lint_failure
    assert failure is None, failure


def test_sam_build_builds_every_function_and_layer_for_the_runtime(rehearsed: rehearsal.Rehearsals) -> None:
    build_dir = rehearsed.build_dir
    # The built template keeps the loops (CloudFormation expands them at deploy time).
    built = expand_template(load_yaml(build_dir / "template.yaml"))
    template = expand_template(load_yaml(TEMPLATE))
    assert set(functions(built)) == set(functions(template))
    for name, res in functions(template).items():
        handler_module = res["Properties"]["Handler"].rpartition(".")[0]
        assert (build_dir / name / f"{handler_module}.py").is_file(), name
    shared = build_dir / "SharedLayer" / "python" / "notifications"
    assert (shared / "__init__.py").is_file()
    # Precompiled by the layer Makefiles (/opt is read-only in Lambda): tests/runtime checks the .pyc files.
    assert list(shared.rglob("__pycache__/*.pyc"))
    deps = build_dir / "DepsLayer" / "python"
    for package in ("aws_lambda_powertools", "aws_xray_sdk", "kafka", "pydantic", "pydantic_core", "jinja2"):
        assert (deps / package).is_dir(), package
    assert list((deps / "pydantic_core").glob("*cpython-313-aarch64-linux-gnu.so")), "not built for the runtime"
    for runtime_provided in ("boto3", "botocore"):
        assert not (deps / runtime_provided).exists(), runtime_provided


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_sam_package_uploads_every_function_and_layer_under_the_environments_prefix(
    rehearsed: rehearsal.Rehearsals, env: str
) -> None:
    done = rehearsed.environments[env]
    # Every function and layer, looped senders included (SAM CLI packages inside Fn::ForEach over a literal list)
    template = expand_template(load_yaml(TEMPLATE))
    packaged_kinds = ("AWS::Serverless::Function", "AWS::Serverless::LayerVersion")
    assert set(done.code) == {name for name, res in template["Resources"].items() if res["Type"] in packaged_kinds}
    # is an object in the local bucket, under the prefix `sam deploy --config-env` uses
    assert all(uri.startswith(f"s3://artifacts/purchase-notifications-{env}/") for uri in done.code.values())
    rehearsal.check_code(done.environment, done.code, rehearsed.uploaded)
    # and the translated template deploys that code
    deployed = {
        name: res["Properties"][CODE_TYPES[res["Type"]]]
        for name, res in done.translated["Resources"].items()
        if res["Type"] in CODE_TYPES
    }
    assert len(deployed) == len(done.code)
    assert {f"s3://{code['S3Bucket']}/{code['S3Key']}" for code in deployed.values()} == set(done.code.values())


def test_a_code_location_outside_the_bucket_is_named() -> None:
    code = {"IngestFunction": "s3://artifacts/purchase-notifications-dev/abc", "DlqFunction": "functions/dlq/"}
    with pytest.raises(RehearsalError) as raised:
        rehearsal.check_code(DEV, code, {"purchase-notifications-dev/abc"})
    assert str(raised.value).splitlines() == [
        "dev: Resources.DlqFunction: code at 'functions/dlq/', not an object uploaded under "
        "s3://artifacts/purchase-notifications-dev/"
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cloudformation_would_accept_the_translated_template(rehearsed: rehearsal.Rehearsals, env: str) -> None:
    done = rehearsed.environments[env]
    rehearsal.check(env, done.translated, done.body_size)
    # sam deploy must upload it: larger than a body passed in the request (51,200 bytes), within the 1 MB from S3
    assert done.body_size < rehearsal.MAX_BODY_BYTES


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_translated_template_is_the_reviewed_snapshot(rehearsed: rehearsal.Rehearsals, env: str) -> None:
    diff = rehearsal.snapshot_diff(env, rehearsed.environments[env].snapshot)
    if diff is not None:
        pytest.fail(diff, pytrace=False)


def test_there_is_a_snapshot_for_each_environment_and_no_other() -> None:
    assert {path.stem for path in rehearsal.SNAPSHOTS.glob("*")} == set(ENVIRONMENTS)


# ------------------------------------------------------------------ snapshots: placeholders and the diff


def test_a_snapshot_does_not_depend_on_the_code() -> None:
    # Given template.yaml translated in the snapshot's form (the packaged template is, but for its code locations)
    reviewed = rehearsal.translation(TEMPLATE, DEV, placeholders=True)
    # Then every function and layer has its code at s3://<artifacts>/<LogicalId>, whatever the code
    resources = reviewed["Resources"]
    located = [res["Properties"][CODE_TYPES[res["Type"]]] for res in resources.values() if res["Type"] in CODE_TYPES]
    assert located
    assert all(code["S3Bucket"] == "<artifacts>" for code in located)
    assert {code["S3Key"] for code in located} >= set(functions(expand_template(load_yaml(TEMPLATE))))
    # and the snapshot holds what sam deploy passes besides the template, keys sorted
    text = rehearsal.snapshot(DEV, reviewed)
    assert json.loads(text)["ParameterOverrides"] == DEV.parameters
    assert text == json.dumps(json.loads(text), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def test_a_snapshot_mismatch_fails_with_a_short_diff_and_the_command_to_accept(tmp_path: Path) -> None:
    # Given a reviewed snapshot and a rehearsal that changed one value, and one that changed everything
    resources = {f"R{i}": {"Type": "T"} for i in range(200)}
    reviewed = json.dumps({"Template": {"Resources": resources}}, indent=1)
    (tmp_path / "dev.json").write_text(reviewed, encoding="utf-8")
    assert rehearsal.snapshot_diff("dev", reviewed, tmp_path) is None
    one = json.dumps({"Template": {"Resources": {**resources, "R7": {"Type": "U"}}}}, indent=1)
    small = rehearsal.snapshot_diff("dev", one, tmp_path)
    large = rehearsal.snapshot_diff("dev", reviewed.replace('"T"', '"U"'), tmp_path)

    # Then the diff shows the change, is cut to a readable length, and ends with the exact command to accept
    assert small is not None and large is not None
    assert '-    "Type": "T"' in small and '+    "Type": "U"' in small
    assert len(small.splitlines()) < 15
    assert (
        small.splitlines()[-1]
        == "If the change is intended, accept it: .venv/bin/python -m devstack.rehearsal --accept"
    )
    assert len(large.splitlines()) <= rehearsal.DIFF_LINES + 3
    assert re.search(r"^\.\.\. \d+ more diff lines$", large, re.MULTILINE)
    # And a missing snapshot says so
    assert "(none)" in (rehearsal.snapshot_diff("staging", reviewed, tmp_path) or "").splitlines()[0]


# ------------------------------------------------------------------ the checks, on broken copies (in memory, no sam)


def _broken(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """template.yaml with one change, written to tmp_path, expanded and translated for dev as the rehearsal does."""
    written = load_yaml(TEMPLATE)
    change(written)
    path = tmp_path / "template.yaml"
    path.write_text(json.dumps(written), encoding="utf-8")
    return rehearsal.translation(path, DEV, placeholders=True)


def _problems(translated: dict[str, Any], body_size: int = 60_000) -> list[str]:
    with pytest.raises(RehearsalError) as raised:
        rehearsal.check("dev", translated, body_size)
    return str(raised.value).splitlines()


def _resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def _variables(template: dict[str, Any], function: str = "IngestFunction") -> dict[str, Any]:
    return template["Resources"][function]["Properties"]["Environment"]["Variables"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_template_yaml_as_written_passes_the_checks(env: str) -> None:
    # The baseline of the broken copies below: each of them differs from template.yaml by one change
    rehearsal.check(env, rehearsal.translation(TEMPLATE, ENVIRONMENTS[env], placeholders=True), 60_000)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            lambda t: _resources(t)["ApiServerErrorsAlarm"]["Properties"]["Dimensions"][0].update(
                Value={"Ref": "NoSuchApi"}
            ),
            "dev: Resources.ApiServerErrorsAlarm.Properties.Dimensions[0].Value.Ref: "
            "Ref 'NoSuchApi' names no resource, parameter or pseudo parameter",
            id="Ref to a missing resource",
        ),
        pytest.param(
            lambda t: _resources(t)["KafkaTopics"]["Properties"].update(
                ServiceToken={"Fn::GetAtt": ["NoSuchFunction", "Arn"]}
            ),
            "dev: Resources.KafkaTopics.Properties.ServiceToken.Fn::GetAtt: Fn::GetAtt 'NoSuchFunction' names no resource",
            id="GetAtt of a missing resource",
        ),
        pytest.param(
            lambda t: t["Outputs"].update(Broken={"Value": {"Fn::GetAtt": "LogLevel.Arn"}}),
            "dev: Outputs.Broken.Value.Fn::GetAtt: Fn::GetAtt 'LogLevel' names no resource",
            id="GetAtt of a parameter",
        ),
        pytest.param(
            lambda t: _resources(t)["IdempotencyTable"]["Properties"].update(
                DeletionProtectionEnabled={"Fn::If": ["IsProduction", True, False]}
            ),
            "dev: Resources.IdempotencyTable.Properties.DeletionProtectionEnabled.Fn::If: "
            "condition 'IsProduction' is not declared in Conditions",
            id="Fn::If on a missing condition",
        ),
        pytest.param(
            lambda t: _resources(t)["SmsSpendAlarm"].update(Condition="HasSmsBudget"),
            "dev: Resources.SmsSpendAlarm.Condition: 'HasSmsBudget' is not declared in Conditions",
            id="resource Condition missing",
        ),
        pytest.param(
            lambda t: _resources(t)["FanoutKafkaTrigger"].update(DependsOn=["KafkaTopics", "NoSuchTopics"]),
            "dev: Resources.FanoutKafkaTrigger.DependsOn: 'NoSuchTopics' is no resource of the template",
            id="DependsOn a missing resource",
        ),
        pytest.param(
            lambda t: t["Conditions"].update(Broken={"Fn::Equals": [{"Ref": "StatusTable"}, ""]}),
            "dev: Conditions.Broken.Fn::Equals[0].Ref: Ref 'StatusTable' names no resource, parameter or pseudo "
            "parameter",
            id="a condition on a resource",
        ),
        pytest.param(
            lambda t: _variables(t).update(QUOTA_CALLER_PER_SECOND={"Ref": "QuotaCallerPerMinute"}),
            "dev: Resources.IngestFunction.Properties.Environment.Variables.QUOTA_CALLER_PER_SECOND.Ref: "
            "Ref 'QuotaCallerPerMinute' names no resource, parameter or pseudo parameter",
            id="env var naming a missing parameter",
        ),
        pytest.param(
            lambda t: _variables(t, "FeedbackFunction").update(
                SUPPRESSION_TABLE_NAME={"Fn::If": ["IsSuppressing", {"Ref": "SuppressionTable"}, ""]}
            ),
            "dev: Resources.FeedbackFunction.Properties.Environment.Variables.SUPPRESSION_TABLE_NAME.Fn::If: "
            "condition 'IsSuppressing' is not declared in Conditions",
            id="env var on a missing condition",
        ),
    ],
)
def test_a_reference_cloudformation_would_refuse_is_named(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    assert _problems(_broken(tmp_path, change)) == [expected]


def test_every_sub_variable_is_checked_in_both_forms(tmp_path: Path) -> None:
    # Given an environment variable with Fn::Sub in string and list form: literals, pseudo parameters, parameters,
    # resources, resource attributes and variable-map keys, three of them naming nothing
    def change(template: dict[str, Any]) -> None:
        _variables(template).update(
            GOOD={
                "Fn::Sub": "${!Literal}-${AWS::Region}-${LogLevel}-${StatusTable}-${StatusTable.Arn}-${AWS::StackName}"
            },
            GOOD_LIST={"Fn::Sub": ["${Name}-${AWS::AccountId}", {"Name": {"Ref": "Environment"}}]},
            BAD={"Fn::Sub": "${NoSuchParameter}-${!Escaped}"},
            BAD_ATTRIBUTE={"Fn::Sub": "${NoSuchTable.Arn}"},
            BAD_LIST={"Fn::Sub": ["${Name}-${Missing}", {"Name": {"Ref": "NoSuchName"}}]},
        )

    # Then each of the three is named, with where it is
    where = "dev: Resources.IngestFunction.Properties.Environment.Variables"
    assert _problems(_broken(tmp_path, change)) == [
        f"{where}.BAD.Fn::Sub: Fn::Sub 'NoSuchParameter' names no resource, parameter or pseudo parameter",
        f"{where}.BAD_ATTRIBUTE.Fn::Sub: Fn::Sub 'NoSuchTable.Arn' names no resource",
        f"{where}.BAD_LIST.Fn::Sub: Fn::Sub 'Missing' names no resource, parameter or pseudo parameter",
        f"{where}.BAD_LIST.Fn::Sub[1].Name.Ref: Ref 'NoSuchName' names no resource, parameter or pseudo parameter",
    ]


def test_a_global_env_var_naming_a_missing_resource_is_named_in_every_function(tmp_path: Path) -> None:
    def change(template: dict[str, Any]) -> None:
        template["Globals"]["Function"]["Environment"]["Variables"]["QUOTA_TABLE"] = {"Ref": "NoSuchTable"}

    # SAM merges Globals into every function: each one is named
    expected = [
        f"dev: Resources.{name}.Properties.Environment.Variables.QUOTA_TABLE.Ref: "
        "Ref 'NoSuchTable' names no resource, parameter or pseudo parameter"
        for name in functions(expand_template(load_yaml(TEMPLATE)))
    ]
    assert sorted(_problems(_broken(tmp_path, change))) == sorted(expected)


@pytest.mark.parametrize(
    ("section", "entry", "count"),
    [
        ("Resources", lambda i: {"Type": "AWS::SNS::Topic"}, 420),
        ("Parameters", lambda i: {"Type": "String", "Default": ""}, 201),
        ("Outputs", lambda i: {"Value": "x"}, 201),
        ("Mappings", lambda i: {"Key": {"Value": "x"}}, 201),
    ],
)
def test_a_template_past_a_cloudformation_quota_is_refused(
    tmp_path: Path, section: str, entry: Callable[[int], dict[str, Any]], count: int
) -> None:
    # Given a copy with too many of one kind (the translated template has SAM's generated resources on top)
    def change(template: dict[str, Any]) -> None:
        template.setdefault(section, {}).update({f"Extra{i}": entry(i) for i in range(count)})

    translated = _broken(tmp_path, change)
    limit = rehearsal.QUOTAS[section]
    assert len(translated[section]) > limit
    # Then the check names the section, its count and the quota
    assert _problems(translated) == [
        f"dev: {section}: {len(translated[section])} declared, CloudFormation allows {limit} (CloudFormation quotas)"
    ]


def test_a_template_body_past_1_mb_is_refused() -> None:
    translated = rehearsal.translation(TEMPLATE, DEV, placeholders=True)
    rehearsal.check("dev", translated, 1_000_000)
    assert _problems(translated, 1_000_001) == [
        "dev: template body: 1,000,001 bytes, CloudFormation reads at most 1 MB from S3 (CloudFormation quotas)"
    ]
