"""Schemathesis against the committed OpenAPI document, over HTTP, on the running local stack: no 5xx, and every
answer is one the document describes.

Authentication is API Gateway's: the local API stands in for its authorizer and lets every request in as the
local caller (devstack.apigw), so Schemathesis' check that requests without credentials are refused does not
apply here; the function's own 401 is checked in process (tests/unit/test_ingest_schemathesis.py) and in
tests/security."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import ignored_auth

from devstack.stack import LocalStack
from tests.support import address_a_channel_refuses

pytestmark = pytest.mark.e2e

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
EXAMPLES_PER_OPERATION = 60


def test_the_running_stack_answers_every_generated_request_as_documented(local_stack: LocalStack) -> None:
    assert local_stack.info is not None
    base_url = local_stack.info.api_url
    schema = schemathesis.openapi.from_path(DOCUMENT)

    @schema.hook
    def filter_body(context, body) -> bool:
        """Leave out numbers the SMS fraud limits refuse: a 422 the document cannot describe (tests.support)."""
        return not address_a_channel_refuses(body)

    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.method.upper() for op in operations} >= {"GET", "POST"}
    calls = 0

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def answers_as_documented(case) -> None:
            nonlocal calls
            # Given a request generated from the document (valid or not), sent over HTTP to the local API
            response = case.call(base_url=base_url, timeout=30)
            calls += 1
            # Then it is never a server error, and status, headers and body are what the document says
            assert response.status_code < 500, response.text
            case.validate_response(response, excluded_checks=[ignored_auth])

        answers_as_documented()
    assert calls >= len(operations) * 10
