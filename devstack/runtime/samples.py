"""Which ``events/`` samples a function takes, read from what the template says it is triggered by."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devstack.template_config import FunctionSpec

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def sample_events(spec: FunctionSpec, events_dir: Path = EVENTS_DIR) -> list[Path]:
    """HTTP API events of the function's routes, MSK events of its trigger topics, SES EventBridge events and
    CloudWatch Logs events for a function invoked asynchronously, or (a function with none of these, a custom
    resource's) CloudFormation requests; sorted by name."""
    found = []
    topics = {topic for trigger in spec.kafka_triggers for topic in trigger.topics}
    routes = {f"{route.method} {route.path}" for route in spec.http_routes}
    for path in sorted(events_dir.glob("*.json")):
        event: dict[str, Any] = json.loads(path.read_text())
        records = [record for batch in (event.get("records") or {}).values() for record in batch]
        if spec.async_events:  # EventBridge events (SES) and CloudWatch Logs subscription events (SMS)
            matches = event.get("source") == "aws.ses" or "awslogs" in event
        elif routes:
            matches = event.get("routeKey") in routes
        elif topics:
            matches = bool(records) and {record["topic"] for record in records} <= topics
        else:
            matches = "RequestType" in event and "ResourceProperties" in event
        if matches:
            found.append(path)
    return found
