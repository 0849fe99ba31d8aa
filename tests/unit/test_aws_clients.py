"""The shared boto3 clients (``notifications.aws``): one per service, each with its User-Agent fixed once."""

from __future__ import annotations

from typing import Any

import pytest

from notifications import aws


def _user_agents(client: Any, calls: int) -> list[str]:
    """The User-Agent header of each of ``calls`` requests, as sent (botocore's ``before-send`` event)."""
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        agent = request.headers["User-Agent"]
        seen.append(agent.decode() if isinstance(agent, bytes) else agent)

    client.meta.events.register("before-send", capture)
    for _ in range(calls):
        client.list_tables()
    return seen


@pytest.mark.parametrize("factory", [aws.client, aws.provider_client])
def test_every_request_sends_the_user_agent_fixed_when_the_client_was_made(moto_aws, monkeypatch, factory):
    """botocore rebuilds its User-Agent for every request unless ``Config(user_agent=...)`` fixes it
    (https://botocore.amazonaws.com/v1/documentation/api/latest/reference/config.html); the fixed one still names
    the SDK, Python and the Lambda runtime."""
    # Given a client made in a Lambda execution environment
    monkeypatch.setenv("AWS_EXECUTION_ENV", "AWS_Lambda_python3.13")
    factory.cache_clear()
    client = factory("dynamodb")

    # When it makes three requests
    agents = _user_agents(client, 3)

    # Then each carries the same string, made of the SDK's own legacy parts and nothing added per request
    assert len(set(agents)) == 1, agents
    [agent] = set(agents)
    parts = agent.split()
    assert parts[0].startswith("Boto3/")
    assert "exec-env/AWS_Lambda_python3.13" in parts
    assert "ua/2.1" not in parts and not any(p.startswith("m/") for p in parts), "the per-request string was sent"
    assert len([p for p in parts if p.startswith("Botocore/")]) == 1
    factory.cache_clear()
