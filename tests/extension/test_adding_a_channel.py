"""Adding a channel takes the steps of docs/adding-a-channel.md, touches only the files it names, and works.

A throwaway ``pager`` channel (files in tests/extension/pager/) is added to a copy of the repository exactly as the
guide says: its package and registry member, its place in template.yaml and samconfig.toml (a required secret
parameter and a rate), the generated files (API document, permissions table), its tests and sample event, its
line in the ``sam local invoke`` block, and its local stand-in. Then, in the copy:

- ``git status`` shows only files the guide's steps name;
- the channel's unit tests and the suites that read the registry or the template pass (the deploy rehearsal's
  snapshots excepted: the guide regenerates them with ``sam build``, too slow to repeat here);
- on the local stack (its own broker, every function with only its role's permissions), a request for the pager
  is accepted, delivered to the stand-in with the secret's token, and GET says sent; a request for it without
  ``customer.pager_id`` is 422 naming the field.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = Path(__file__).resolve().parent / "pager"
GUIDE = ROOT / "docs" / "adding-a-channel.md"
SECRET_PATTERN = "^arn:aws[a-zA-Z-]*:secretsmanager:[a-z0-9-]+:\\\\d{12}:secret:.+$"
PAGER_ARN = "arn:aws:secretsmanager:eu-central-1:111111111111:secret:notifications/pager-AbCdEf"
# The suites of the copy that read the registry or the template (beside the channel's own tests).
SUITES = [
    "tests/unit/test_channels_pager.py",
    "tests/unit/test_channel_lists.py",
    "tests/unit/test_templates.py",
    "tests/unit/test_openapi.py",
    "tests/unit/test_import_contracts.py",
    "tests/unit/test_fanout.py",
    "tests/template/test_template.py",
    "tests/template/test_expansion.py",
    "tests/template/test_permissions.py",
    "tests/security/test_quotas.py",
]

DELIVERY = """
import json, sys, time, urllib.error, urllib.request, uuid
from pathlib import Path
from devstack.apigw import CALLER_HEADER
from devstack.stack import LocalStack
from tests.support import isolated_stack_config, sample_request

config = isolated_stack_config(Path(sys.argv[1]))
with LocalStack(config, progress=lambda line: None) as stack:
    def call(method, path, body=None):
        request = urllib.request.Request(
            stack.info.api_url + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json", CALLER_HEADER: "shop-pager"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
    customer = {"id": "c-7", "name": "Ada", "pager_id": "P765432"}
    body = sample_request(channels=["pager"], customer=customer)
    accepted = call("POST", "/v1/notifications", body)
    missing = call("POST", "/v1/notifications", sample_request(channels=["pager"]))
    pages = stack.slack.wait_for(1, timeout=60, path="/pager")
    deadline, status = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        status = call("GET", f"/v1/notifications/{body['id']}")
        if status[1].get("channels", [{}])[0].get("state") == "sent":
            break
        time.sleep(0.2)
    print(json.dumps({
        "accepted": accepted[0],
        "missing": missing,
        "pages": [{"headers": dict(p.headers), "body": p.json()} for p in pages],
        "status": status,
    }))
"""


def run(args: list[str], cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(cwd / "layers/shared/python"), str(cwd)]),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(args, cwd=cwd, env=env, check=False, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]


def checked(args: list[str], cwd: Path, timeout: float = 300) -> str:
    done = run(args, cwd, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return str(done.stdout)


def copy_repository(copy: Path) -> None:
    """The repository's files as they are now (tracked and new, not ignored), committed in a repository of its own."""
    listed = checked(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], ROOT)
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    checked(["git", "init", "-q"], copy)
    checked(["git", "add", "-A"], copy)
    checked(["git", "commit", "-qm", "before the channel"], copy)


def named_files(guide: str) -> list[str]:
    """The paths the guide's steps name on their ``Files:`` lines, as patterns (``<x>`` the channel's name)."""
    patterns = []
    for paragraph in re.findall(r"^Files?: (.*?)(?:\n\n|\Z)", guide, re.M | re.S):
        for named in re.findall(r"`([^`]+)`", paragraph):
            if "/" in named or "." in named:
                path = named.replace("<x>", "pager").replace("<X>", "Pager")
                patterns.append(re.sub(r"<[^>]+>", "*", path))
    return patterns


def insert_after(text: str, anchor: str, addition: str, count: int = 1) -> str:
    assert text.count(anchor) == count, f"{anchor!r} appears {text.count(anchor)} times"
    return text.replace(anchor, anchor + addition)


def insert_before(text: str, anchor: str, addition: str) -> str:
    assert text.count(anchor) == 1, f"{anchor!r} appears {text.count(anchor)} times"
    return text.replace(anchor, addition + anchor)


def follow_the_guide(copy: Path) -> None:
    # 1. The package, the registry member, the API document
    shutil.copytree(PLUGIN / "layers", copy / "layers", dirs_exist_ok=True)
    registry = copy / "layers/shared/python/notifications/registry.py"
    registry.write_text(insert_after(registry.read_text(), '    WEBHOOK = "webhook"\n', '    PAGER = "pager"\n'))
    (copy / "docs/openapi.json").write_text(checked([sys.executable, "-m", "notifications.http_api"], copy))

    # 2. template.yaml (loop lists, the mapping row, parameters, the provider policy, the sender's variable),
    # samconfig.toml (the required parameter in each deployed environment), the generated permissions table
    template = copy / "template.yaml"
    text = template.read_text()
    loops = re.findall(r"^    - \[Email, [A-Za-z, ]+\]", text, re.M)
    assert len(loops) == 2, "the channel list of the resources' and the outputs' loop"
    for loop in loops:
        text = text.replace(loop, loop[:-1] + ", Pager]")
    text = insert_after(
        text,
        "  Channels:\n",
        "    Pager:\n      Name: pager\n      Description: notifications.pager -> the on-call pager service.\n"
        "      PAGERSECRETID: PagerSecretArn\n      SENDRATEPERSECOND: PagerSendRate\n"
        "      PROVIDERPOLICY: PagerProviderPolicy\n",
    )
    text = insert_after(
        text,
        "Parameters:\n",
        f'  PagerSecretArn: {{Type: String, AllowedPattern: "{SECRET_PATTERN}",\n'
        '                   Description: "Full ARN of the secret holding the pager service\'s URL and token."}\n'
        "  PagerSendRate: {Type: Number, Default: 5, MinValue: 0}\n",
    )
    text = insert_before(
        text,
        "  SmsProviderPolicy:\n",
        "  PagerProviderPolicy:\n    Type: AWS::IAM::ManagedPolicy\n    Properties:\n      PolicyDocument:\n"
        '        Version: "2012-10-17"\n'
        "        Statement: [{Sid: PagerSecret, Effect: Allow, Action: secretsmanager:GetSecretValue, "
        "Resource: !Ref PagerSecretArn}]\n",
    )
    variable = re.search(r"\n( +)SMS_SENDER_ID: [^\n]+\n", text)
    assert variable, "the sender's variables"
    indent = variable.group(1)
    text = insert_after(
        text,
        variable.group(0)[1:],
        f"{indent}PAGER_SECRET_ID: !Ref {{Fn::FindInMap: [Channels, !Ref Channel, PAGERSECRETID, "
        "{DefaultValue: AWS::NoValue}]}\n",
    )
    template.write_text(text)
    samconfig = copy / "samconfig.toml"
    overrides = "parameter_overrides = [\n"
    config = samconfig.read_text()
    sections = config.split("\n[")
    config = "\n[".join(
        section.replace(overrides, f'{overrides}  "PagerSecretArn={PAGER_ARN}",\n', 1)
        if section.startswith(("default.deploy", "dev.deploy", "staging.deploy", "prod.deploy"))
        else section
        for section in sections
    )
    samconfig.write_text(config)
    checked([sys.executable, "-m", "devstack.permissions", "table", "--write", "docs/security.md"], copy)

    # 3. Its tests, its sample event, its line in the sam local invoke block
    shutil.copytree(PLUGIN / "tests", copy / "tests", dirs_exist_ok=True)
    sample = checked([sys.executable, "-m", "devstack.msk_events", "pager"], copy)
    (copy / "events/sender_pager_msk.json").write_text(sample)
    deploy = copy / "docs/deploy.md"
    last = "sam local invoke WebhookSenderFunction --config-env local -e events/sender_webhook_msk.json\n"
    line = "sam local invoke PagerSenderFunction --config-env local -e events/sender_pager_msk.json\n"
    deploy.write_text(insert_after(deploy.read_text(), last, line))

    # 4. The local stand-in
    shutil.copytree(PLUGIN / "devstack", copy / "devstack", dirs_exist_ok=True)


def test_the_guide_has_at_most_four_steps_each_naming_its_files() -> None:
    guide = GUIDE.read_text()
    steps = re.findall(r"^## \d+\. .*$", guide, re.M)
    assert 1 <= len(steps) <= 4, steps
    for section in re.split(r"^## \d+\. .*$", guide, flags=re.M)[1:]:
        assert re.search(r"^Files?: ", section, re.M), section[:200]


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("extension") / "project"
    copy.mkdir()
    copy_repository(copy)
    follow_the_guide(copy)
    return copy


def test_following_the_guide_touches_only_the_files_it_names(copy: Path) -> None:
    changed = checked(["git", "status", "--porcelain", "--untracked-files=all"], copy).splitlines()
    paths = sorted(line[3:] for line in changed)
    patterns = named_files(GUIDE.read_text())
    assert "template.yaml" in patterns and "devstack/standins/pager.py" in patterns
    assert paths, "the guide's steps changed nothing"
    assert [p for p in paths if not any(fnmatch.fnmatch(p, pattern) for pattern in patterns)] == []
    assert "layers/shared/python/notifications/channels/pager/sender.py" in paths


def test_the_channels_tests_and_the_suites_reading_the_registry_pass_in_the_copy(copy: Path) -> None:
    done = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *SUITES], copy, timeout=900)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    assert re.search(r"\d+ passed", done.stdout)


def test_a_pager_notification_is_delivered_on_the_local_stack_of_the_copy(copy: Path, tmp_path: Path) -> None:
    # The copy uses the repository's fetched Kafka and DynamoDB (.cache), as a fresh clone would after `make install`
    (copy / ".cache").symlink_to(ROOT / ".cache", target_is_directory=True)
    done = run([sys.executable, "-c", DELIVERY, str(tmp_path / "devstack")], copy, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["accepted"] == 202
    status, error = seen["missing"]
    assert status == 422
    assert "customer.pager_id" in json.dumps(error)
    [page] = seen["pages"]
    assert page["headers"]["authorization"] == "Bearer local-pager-token"
    assert page["body"]["pager_id"] == "P765432"
    assert page["body"]["summary"].startswith("Order ")
    assert seen["status"][0] == 200
    assert [c["state"] for c in seen["status"][1]["channels"]] == ["sent"]


def test_the_template_deploys_exactly_the_registry_channels() -> None:
    from devstack.template_config import channel_names
    from notifications.registry import Channel

    assert sorted(channel_names(ROOT / "template.yaml")) == sorted(c.value for c in Channel)
