"""Adding a channel takes the three steps of docs/adding-a-channel.md, and everything else picks it up.

A throwaway ``pager`` channel is added to a copy of the project through the same extension points a developer uses:
1. a channel package (settings, sender, templates) under ``notifications/channels/``;
2. its row in template.yaml's ``Mappings.Channels`` and its name in the channel loops;
3. (its tests: this one).
Then, in a fresh interpreter on the copy: the ``Channel`` enum and the request model accept it, fanout writes its
topic, the OpenAPI document lists it, the local stack's function list has its sender with its trigger, and the
sender function builds its sender from the package.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = {
    "__init__.py": '''
        """Pager: a page to the shop's on-call pager service (a throwaway channel for the extension test)."""

        from notifications.channels import ChannelSpec
        from notifications.env import EnvModel


        class PagerSettings(EnvModel):
            pager_service: str = "orders"


        CHANNEL = ChannelSpec(settings=PagerSettings)
    ''',
    "sender.py": """
        from notifications.channels.base import Receipt, render
        from notifications.models import ChannelMessage
        from notifications.registry import Channel


        class PagerSender:
            channel = Channel("pager")

            def __init__(self, service):
                self.service = service

            def send(self, message: ChannelMessage) -> Receipt:
                return Receipt(provider_message_id=render(self.channel, message.locale, "page.txt", message))


        def create(settings, config):
            return PagerSender(config.pager_service)
    """,
    "templates/en/page.txt": "Order {{ purchase.order_id }} paid",
    "templates/de/page.txt": "Bestellung {{ purchase.order_id }} bezahlt",
}

CHECK = """
import json, sys
from devstack.template_config import load_template, channel_names
from notifications import channels
from notifications.fanout import FanoutService
from notifications.http_api import openapi_json
from notifications.models import channel_messages
from notifications.registry import Channel
from notifications.settings import FanoutSettings, SenderSettings
from tests.channel_support import kafka_record, requested
from tests.support import MemoryPublisher

from pathlib import Path
template = load_template(Path(sys.argv[1]))
envelope = requested(channels=["pager", "email"])
publisher = MemoryPublisher()
FanoutService(FanoutSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "b:1"}), publisher).process(
    [kafka_record("notifications.requested", 0, envelope.to_json())]
)
document = json.loads(openapi_json())
env = {"KAFKA_BOOTSTRAP_SERVERS": "b:1", "CHANNEL": "pager", "STATUS_TABLE_NAME": "s", "IDEMPOTENCY_TABLE_NAME": "i"}
sender = channels.create_sender(SenderSettings.from_env(env), env)
print(json.dumps({
    "enum": sorted(c.value for c in Channel),
    "template_channels": sorted(channel_names(Path(sys.argv[1]))),
    "fanout_topics": sorted({r.topic for r in publisher.records}),
    "openapi_enum": sorted(document["components"]["schemas"]["Channel"]["enum"]),
    "functions": {f.logical_id: [list(t.topics) for t in f.kafka_triggers] for f in template.functions.values()},
    "pager_env": template.function("PagerSenderFunction").environment.get("CHANNEL"),
    "sent": sender.send(channel_messages(envelope)[0]).provider_message_id,
}))
"""


def add_pager(copy: Path) -> None:
    """Step 1: the plugin package. Step 2: the template's mapping row and loop entries."""
    package = copy / "layers/shared/python/notifications/channels/pager"
    for name, text in PLUGIN.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(textwrap.dedent(text).lstrip())
    template = copy / "template.yaml"
    text = template.read_text()
    before = "[Email, Slack, Sms, Webhook]"
    assert text.count(before) == 2, "the channel list is written in the resources and the outputs loop"
    text = text.replace(before, "[Email, Slack, Sms, Webhook, Pager]")
    row = "  Channels:\n"
    text = text.replace(
        row, row + "    Pager:\n      Name: pager\n      Description: notifications.pager -> the on-call pager.\n", 1
    )
    template.write_text(text)


def test_a_throwaway_channel_is_picked_up_everywhere(tmp_path: Path) -> None:
    # Given a copy of the project with a pager channel added through the documented extension points
    copy = tmp_path / "project"
    shutil.copytree(ROOT / "layers", copy / "layers", ignore=shutil.ignore_patterns("__pycache__", ".aws-sam"))
    for name in ("devstack", "tests", "functions"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "template.yaml", copy / "template.yaml")
    add_pager(copy)

    # When a fresh interpreter imports the copy
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy / "layers/shared/python"), str(copy)])}
    run = subprocess.run(
        [sys.executable, "-c", CHECK, str(copy / "template.yaml")],
        cwd=copy,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])

    # Then the registry, the template, fanout, the OpenAPI enum and the local stack's functions all have it
    assert "pager" in seen["enum"]
    assert seen["template_channels"] == seen["enum"]
    assert "notifications.pager" in seen["fanout_topics"]
    assert "pager" in seen["openapi_enum"]
    assert seen["functions"]["PagerSenderFunction"] == [["notifications.pager"]]
    assert seen["pager_env"] == "pager"
    assert seen["sent"] == "Order " + seen["sent"].split(" ")[1] + " paid"


def test_the_template_deploys_exactly_the_registry_channels() -> None:
    from devstack.template_config import channel_names
    from notifications import channels

    assert sorted(channel_names(ROOT / "template.yaml")) == sorted(channels.names())
