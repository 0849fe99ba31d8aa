"""docs/security.md's retention table is template.yaml's: a row for every store of personal data, each period the
template's value (or the code's, where the code writes the expiry), so that a period changed in the template alone
fails here.

Where each period comes from, and the AWS behaviour the table relies on:

- Kafka topics: ``retention.ms`` as the topics custom resource handler sets it from ``RetentionMs`` /
  ``DlqRetentionMs`` (https://kafka.apache.org/documentation/#topicconfigs_retention.ms).
- SQS queues: ``MessageRetentionPeriod`` in seconds
  (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html).
- Log groups: ``RetentionInDays``; a group without it keeps its events forever
  (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_DeleteRetentionPolicy.html). SNS's SMS
  delivery status logs go to groups of fixed names, which SNS would otherwise create itself
  (https://docs.aws.amazon.com/sns/latest/dg/topics-attrib-prereq.html).
- DynamoDB tables: the TTL attribute (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TTL.html)
  and how long the code sets it ahead; point-in-time recovery keeps 35 days unless ``RecoveryPeriodInDays`` says
  otherwise (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_PointInTimeRecoverySpecification.html).
- A function's asynchronous event queue: 6 hours unless ``EventInvokeConfig`` sets ``MaximumEventAgeInSeconds``
  (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-configuring.html); an EventBridge rule's target
  retries for 24 hours unless its ``RetryPolicy`` says otherwise, then drops the event if it has no dead-letter queue
  (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-retry-policy.html).
"""

from __future__ import annotations

import copy
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from devstack.template_config import CHANNEL_LOOP, channel_names, expanded_template, load_yaml
from notifications import quotas, retention
from notifications.settings import IngestSettings
from tests.template.conftest import ROOT, TEMPLATE, function_environment, functions

HOUR, DAY = 3600, 86400
SECTION = "## How long personal data is kept"
COLUMNS = ["store", "what personal data", "period", "how it is bounded", "how erasure reaches it"]

# Resources that keep data, each of which needs a row; Kafka topics (Custom::KafkaTopics) are checked by topic name.
STORE_TYPES = ("AWS::SQS::Queue", "AWS::Logs::LogGroup", "AWS::DynamoDB::Table")
TOPICS_TYPE = "Custom::KafkaTopics"
# Every other resource type the template uses, and why it keeps no personal data of its own. A new type fails
# the check until it is a store with a row or listed here.
HOLDS_NO_DATA = {
    "AWS::CloudWatch::Alarm": "metrics only",
    "AWS::Serverless::Function": "code; its logs are in its log group, its pending events in its async queue's row",
    "AWS::Serverless::LayerVersion": "code",
    "AWS::Serverless::HttpApi": "passes requests on; its access log is ApiAccessLogGroup",
    "AWS::Lambda::EventSourceMapping": "reads Kafka; the records stay in their topic",
    "AWS::IAM::ManagedPolicy": "permissions",
    "AWS::IAM::Policy": "permissions",
    "AWS::IAM::Role": "permissions",
    "AWS::SES::ConfigurationSet": "sending settings",
    "AWS::SES::ConfigurationSetEventDestination": "routes SES events to EventBridge (its retries have a row)",
    "Custom::SmsSpendLimit": "account SMS settings",
}
# SAM event types whose source invokes the function asynchronously (Lambda: asynchronous invocation).
ASYNC_EVENT_TYPES = {"EventBridgeRule", "CloudWatchEvent", "CloudWatchLogs", "SNS", "S3", "Schedule", "ScheduleV2"}
# AWS defaults for settings the template leaves out (sources in the module docstring).
PITR_DEFAULT_DAYS = 35
ASYNC_EVENT_AGE_DEFAULT = 6 * HOUR
EVENTBRIDGE_EVENT_AGE_DEFAULT = 24 * HOUR
# Rows that are not a store's own row, found by how their store cell begins or what it says.
BACKUPS = "Point-in-time recovery"
ASYNC_QUEUE = "asynchronous event queue"
EVENTBRIDGE_RETRIES = "EventBridge's retries"
LOGICAL_ID = re.compile(r"[A-Z][A-Za-z0-9]+")


@dataclass(frozen=True)
class Row:
    store: str
    data: str
    period: str
    bounded: str
    erasure: str
    names: frozenset[str]  # what the store cell names in backticks, each channel placeholder expanded


def _load_topics_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("topics_handler", ROOT / "functions/topics/topics_handler.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


topics_handler = _load_topics_handler()


def _expand(name: str) -> set[str]:
    """``<Channel>`` / ``<channel>`` stand for each item of the template's channel loop / each channel's name."""
    if "<Channel>" in name:
        return {name.replace("<Channel>", item) for item in load_yaml(TEMPLATE)["Resources"][CHANNEL_LOOP][1]}
    if "<channel>" in name:
        return {name.replace("<channel>", channel) for channel in channel_names(TEMPLATE)}
    return {name}


def retention_table(markdown: str) -> list[Row]:
    """The rows of the table under SECTION."""
    section = markdown.split(SECTION, 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.startswith("|")]

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip("|").split(" | ")]

    assert cells(lines[0]) == COLUMNS
    rows = []
    for line in lines[2:]:
        store, data, period, bounded, erasure = cells(line)
        names = frozenset(n for quoted in re.findall(r"`([^`]+)`", store) for n in _expand(quoted))
        rows.append(Row(store, data, period, bounded, erasure, names))
    return rows


def _duration(seconds: int) -> str:
    if seconds % DAY == 0 and seconds >= 2 * DAY:
        return f"{seconds // DAY} days"
    if seconds % HOUR == 0:
        hours = seconds // HOUR
        return f"{hours} hour" if hours == 1 else f"{hours} hours"
    return f"{seconds} seconds"


def _ref(value: Any) -> str:
    assert isinstance(value, dict) and set(value) == {"Ref"}, value
    return str(value["Ref"])


class Check:
    """The table against one template: ``problems`` lists every row missing or disagreeing with it."""

    def __init__(self, template: dict[str, Any], rows: list[Row]) -> None:
        self.template = template
        self.resources: dict[str, Any] = template["Resources"]
        self.rows = rows
        self.problems: list[str] = []

    def special(self, label: str, test: Callable[[str], bool]) -> Row | None:
        found = [row for row in self.rows if test(row.store)]
        if len(found) != 1:
            self.problems.append(f"{len(found)} rows for {label!r}, expected one")
            return None
        return found[0]

    def row_of(self, name: str) -> Row | None:
        """The store's own row: the one naming it, point-in-time backups aside."""
        found = [row for row in self.rows if name in row.names and not row.store.startswith(BACKUPS)]
        if len(found) != 1:
            self.problems.append(f"{name}: {len(found)} rows name it, expected one")
            return None
        return found[0]

    def period(self, name: str, expected: str, row: Row | None = None) -> None:
        row = row or self.row_of(name)
        if row is not None and expected not in row.period:
            self.problems.append(f"{name}: period {row.period!r} does not say {expected!r}")

    def of_type(self, *types: str) -> dict[str, Any]:
        return {name: res for name, res in self.resources.items() if res["Type"] in types}

    def run(self) -> list[str]:
        self.stores()
        self.topics()
        self.queues()
        self.log_groups()
        self.tables()
        self.backups()
        self.async_queues()
        self.eventbridge_retries()
        return self.problems

    def stores(self) -> None:
        for name, res in self.resources.items():
            if res["Type"] not in (*STORE_TYPES, TOPICS_TYPE, *HOLDS_NO_DATA):
                self.problems.append(f"{name}: {res['Type']} is neither a store with a row nor known to hold no data")
        named = set().union(*(row.names for row in self.rows))
        for name in sorted(named):
            if LOGICAL_ID.fullmatch(name) and name not in self.resources:
                self.problems.append(f"{name}: named in the table, not in the template")

    def topics(self) -> None:
        deployed: set[str] = set()
        for res in self.of_type(TOPICS_TYPE).values():
            props = res["Properties"]
            for topic, ms in topics_handler.retention_ms(props, props["Topics"]).items():
                deployed.add(topic)
                self.period(topic, f"{_duration(ms // 1000)} (`retention.ms` {ms})")
        named = {n for row in self.rows for n in row.names if n.startswith("notifications.")}
        self.problems += [f"{topic}: named in the table, not deployed" for topic in sorted(named - deployed)]

    def queues(self) -> None:
        for name, res in self.of_type("AWS::SQS::Queue").items():
            seconds = res["Properties"].get("MessageRetentionPeriod")
            if seconds is None:
                self.problems.append(f"{name}: no MessageRetentionPeriod (SQS's default applies)")
                continue
            self.period(name, f"{_duration(int(seconds))} (`MessageRetentionPeriod` {seconds})")

    def log_groups(self) -> None:
        parameters = self.template["Parameters"]
        for name, res in self.of_type("AWS::Logs::LogGroup").items():
            days = res["Properties"].get("RetentionInDays")
            if days is None:
                self.problems.append(f"{name}: no RetentionInDays, its events never expire")
            elif isinstance(days, dict):
                parameter = _ref(days)
                self.period(name, f"parameter `{parameter}`, default {parameters[parameter]['Default']} days")
            else:
                self.period(name, f"{days} days")
        # Each function logs to one of these groups, not to a group Lambda creates without retention
        for function, res in functions(self.template).items():
            group = res["Properties"].get("LoggingConfig", {}).get("LogGroup")
            if group is None or self.resources.get(_ref(group), {}).get("Type") != "AWS::Logs::LogGroup":
                self.problems.append(f"{function}: logs to no log group of the template")

    def tables(self) -> None:
        # The tables the code writes, by the environment variables that name them
        env = function_environment(self.template, "IngestFunction")
        status, idempotency, quota = (
            _ref(env[v]) for v in ("STATUS_TABLE_NAME", "IDEMPOTENCY_TABLE_NAME", "QUOTA_TABLE_NAME")
        )
        key_ttl = IngestSettings.model_fields["idempotency_ttl_seconds"].default
        if "IDEMPOTENCY_TTL_SECONDS" in env:
            self.problems.append("IngestFunction: IDEMPOTENCY_TTL_SECONDS set, the table assumes the default")
        written = {
            status: f"{_duration(retention.STATUS_TTL_SECONDS)} after the item's last write",
            idempotency: _duration(key_ttl),
            quota: f"until its window ends: {_duration(quotas.HOUR)} for a recipient, {_duration(quotas.DAY)} for a caller",
        }
        for name, res in self.of_type("AWS::DynamoDB::Table").items():
            ttl = res["Properties"].get("TimeToLiveSpecification") or {}
            if not ttl.get("Enabled"):
                self.period(name, "unlimited (no TTL)")
            elif name not in written:
                self.problems.append(f"{name}: TTL `{ttl['AttributeName']}`, but no code known to write it")
            else:
                self.period(name, f"{written[name]} (TTL `{ttl['AttributeName']}`)")

    def backups(self) -> None:
        row = self.special(BACKUPS, lambda store: store.startswith(BACKUPS))
        if row is None:
            return
        backed_up = {
            name: res["Properties"]["PointInTimeRecoverySpecification"]
            for name, res in self.of_type("AWS::DynamoDB::Table").items()
            if res["Properties"].get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled")
        }
        if set(backed_up) != row.names:
            self.problems.append(f"{BACKUPS} names {sorted(row.names)}, the template backs up {sorted(backed_up)}")
        for name, spec in backed_up.items():
            days = spec.get("RecoveryPeriodInDays")
            expected = (
                f"{days} days (`RecoveryPeriodInDays` {days})"
                if days is not None
                else f"{PITR_DEFAULT_DAYS} days (no `RecoveryPeriodInDays`: DynamoDB's default)"
            )
            self.period(name, expected, row)

    def async_queues(self) -> None:
        """Functions invoked asynchronously: how long Lambda keeps their events queued."""
        row = self.special(ASYNC_QUEUE, lambda store: ASYNC_QUEUE in store)
        if row is None:
            return
        invoked = {
            name: res["Properties"]
            for name, res in functions(self.template).items()
            if any(event["Type"] in ASYNC_EVENT_TYPES for event in res["Properties"].get("Events", {}).values())
        }
        if row.names != set(invoked):
            self.problems.append(f"{ASYNC_QUEUE} names {sorted(row.names)}, invoked so: {sorted(invoked)}")
        separate = {
            _ref(c["Properties"]["FunctionName"]) for c in self.of_type("AWS::Lambda::EventInvokeConfig").values()
        }
        for name, props in invoked.items():
            if name in separate:
                self.problems.append(f"{name}: an AWS::Lambda::EventInvokeConfig the table does not read")
            age = props.get("EventInvokeConfig", {}).get("MaximumEventAgeInSeconds")
            expected = (
                f"{_duration(ASYNC_EVENT_AGE_DEFAULT)} (no `EventInvokeConfig`: Lambda's default)"
                if age is None
                else f"{_duration(age)} (`MaximumEventAgeInSeconds` {age})"
            )
            self.period(name, expected, row)

    def eventbridge_retries(self) -> None:
        """EventBridge rules targeting a function: how long EventBridge retries an event, then drops it."""
        row = self.special(EVENTBRIDGE_RETRIES, lambda store: store.startswith(EVENTBRIDGE_RETRIES))
        if row is None:
            return
        rules = {
            (name, event_name): event["Properties"]
            for name, res in functions(self.template).items()
            for event_name, event in res["Properties"].get("Events", {}).items()
            if event["Type"] == "EventBridgeRule"
        }
        if row.names != {name for name, _ in rules}:
            self.problems.append(f"{EVENTBRIDGE_RETRIES} names {sorted(row.names)}, with rules: {sorted(rules)}")
        for (name, _), props in rules.items():
            if "DeadLetterConfig" in props:
                self.problems.append(f"{name}: its rule has a dead-letter queue, the table says it drops events")
            age = props.get("RetryPolicy", {}).get("MaximumEventAgeInSeconds")
            expected = (
                f"{_duration(EVENTBRIDGE_EVENT_AGE_DEFAULT)} (no `RetryPolicy`: EventBridge's default)"
                if age is None
                else f"{_duration(age)} (`MaximumEventAgeInSeconds` {age})"
            )
            self.period(name, expected, row)


DOCS = (ROOT / "docs" / "security.md").read_text()
ROWS = retention_table(DOCS)
DEPLOYED = expanded_template(TEMPLATE)


def test_the_retention_table_names_every_store_and_its_period_as_the_template_sets_it():
    # Given the template as CloudFormation deploys it and docs/security.md's retention table
    # Then every store has its row, with the template's period
    assert Check(DEPLOYED, ROWS).run() == []


def _changed(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    template = copy.deepcopy(DEPLOYED)
    change(template)
    return template


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(template: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = template
        for key in parents:
            node = node[key]
        node[last] = value

    return change


LOG_GROUPS_ON_THE_PARAMETER = {
    name
    for name, res in DEPLOYED["Resources"].items()
    if res["Type"] == "AWS::Logs::LogGroup" and res["Properties"].get("RetentionInDays") == {"Ref": "LogRetentionDays"}
}
SES_RULE = "Resources.FeedbackFunction.Properties.Events.SesEvents.Properties"
# One store added or one period changed in the template, and the stores the check must then report.
CHANGES = {
    "queue retention": (
        _set("Resources.FeedbackDeadLetterQueue.Properties.MessageRetentionPeriod", 4 * DAY),
        {"FeedbackDeadLetterQueue"},
    ),
    "a log group's own period": (
        _set("Resources.SmsDeliveryLogGroup.Properties.RetentionInDays", 7),
        {"SmsDeliveryLogGroup"},
    ),
    "a log group without retention": (
        lambda t: t["Resources"]["ApiAccessLogGroup"]["Properties"].pop("RetentionInDays"),
        {"ApiAccessLogGroup"},
    ),
    "the log retention parameter's default": (
        _set("Parameters.LogRetentionDays.Default", 14),
        LOG_GROUPS_ON_THE_PARAMETER,
    ),
    "topic retention": (
        _set("Resources.KafkaTopics.Properties.RetentionMs", 3 * DAY * 1000),
        {"notifications.requested"},
    ),
    "a channel topic's retention": (
        _set("Resources.SmsTopic.Properties.RetentionMs", 3 * DAY * 1000),
        {"notifications.sms"},
    ),
    "DLQ retention": (_set("Resources.KafkaTopics.Properties.DlqRetentionMs", 14 * DAY * 1000), {"notifications.dlq"}),
    "a TTL attribute": (
        _set("Resources.QuotaTable.Properties.TimeToLiveSpecification", {"AttributeName": "ttl", "Enabled": True}),
        {"QuotaTable"},
    ),
    "a TTL nothing writes": (
        _set(
            "Resources.SuppressionTable.Properties.TimeToLiveSpecification", {"AttributeName": "gone", "Enabled": True}
        ),
        {"SuppressionTable"},
    ),
    "a recovery period": (
        _set("Resources.StatusTable.Properties.PointInTimeRecoverySpecification.RecoveryPeriodInDays", 7),
        {"StatusTable"},
    ),
    "EventBridge's retry window": (
        _set(f"{SES_RULE}.RetryPolicy.MaximumEventAgeInSeconds", HOUR),
        {"FeedbackFunction"},
    ),
    "the async event age": (
        _set("Resources.FeedbackFunction.Properties.EventInvokeConfig", {"MaximumEventAgeInSeconds": HOUR}),
        {"FeedbackFunction"},
    ),
    "a new queue": (
        _set("Resources.AuditQueue", {"Type": "AWS::SQS::Queue", "Properties": {"MessageRetentionPeriod": 60}}),
        {"AuditQueue"},
    ),
    "a new kind of store": (
        _set("Resources.AuditBucket", {"Type": "AWS::S3::Bucket", "Properties": {}}),
        {"AuditBucket"},
    ),
    "a function logging elsewhere": (
        _set("Resources.IngestFunction.Properties.LoggingConfig", {"LogFormat": "JSON"}),
        {"IngestFunction"},
    ),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_store_or_period_changed_in_the_template_alone_fails_the_check(change: str):
    # Given the template with one store added or one period changed, and the table as it is
    edit, stores = CHANGES[change]
    # When the table is checked against it
    problems = Check(_changed(edit), ROWS).run()
    # Then the check reports exactly the stores concerned
    assert {problem.split(":", 1)[0] for problem in problems} == stores, problems


def test_a_row_for_a_store_the_template_no_longer_has_fails_the_check():
    # Given the template without the feedback dead-letter queue
    template = _changed(lambda t: t["Resources"].pop("FeedbackDeadLetterQueue"))
    # Then the table's row for it is reported
    assert Check(template, ROWS).run() == ["FeedbackDeadLetterQueue: named in the table, not in the template"]


def test_the_sms_delivery_log_groups_are_the_ones_sns_writes():
    # Given the log groups the stack creates and the SMS settings that turn SNS's delivery status logs on
    names = {
        res["Properties"]["LogGroupName"]["Fn::Sub"]
        for res in DEPLOYED["Resources"].values()
        if res["Type"] == "AWS::Logs::LogGroup" and isinstance(res["Properties"]["LogGroupName"], dict)
    }
    # Then both groups SNS writes SMS delivery logs to are among them (names fixed by SNS), with a retention period
    prefix = "sns/${AWS::Region}/${AWS::AccountId}/DirectPublishToPhoneNumber"
    assert {prefix, f"{prefix}/Failure"} <= names
    assert DEPLOYED["Resources"]["SmsSpendLimit"]["Properties"]["DeliveryStatusIamRoleArn"] == {
        "Fn::GetAtt": ["SmsDeliveryStatusRole", "Arn"]
    }


def _paragraph(markdown: str, start: str) -> str:
    return markdown.split(start, 1)[1].split("\n\n", 1)[0]


def test_the_throttling_paragraph_states_the_template_s_route_limits():
    # Given the HTTP API's stage settings
    settings = DEPLOYED["Resources"]["NotificationsApi"]["Properties"]["DefaultRouteSettings"]
    paragraph = _paragraph(DOCS, "**What route throttling protects")
    # Then the paragraph names each limit's parameter and its default, and cites AWS's page on HTTP API throttling
    for setting in ("ThrottlingRateLimit", "ThrottlingBurstLimit"):
        parameter = _ref(settings[setting])
        default = DEPLOYED["Parameters"][parameter]["Default"]
        assert re.search(rf"`{parameter}`[^`]*?default {default}\b", paragraph), (parameter, default)
    assert "https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-throttling.html" in paragraph


def test_every_row_says_what_it_holds_how_it_is_bounded_and_what_erasure_does():
    # Then no cell of the table is empty
    assert [row.store for row in ROWS if not all((row.data, row.period, row.bounded, row.erasure))] == []
