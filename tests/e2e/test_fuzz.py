"""Schemathesis against the committed OpenAPI document, over HTTP, on the running local stack: no 5xx, and every
answer is one the document describes."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from devstack.stack import LocalStack

pytestmark = pytest.mark.e2e

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


@pytest.fixture
def stack_schema(local_stack: LocalStack):
    assert local_stack.info is not None
    schema = schemathesis.openapi.from_path(DOCUMENT)
    schema.config.update(base_url=local_stack.info.api_url, request_timeout=30)
    schema.config.generation.update(max_examples=60, deterministic=True)
    return schema


schema = schemathesis.pytest.from_fixture("stack_schema")


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_the_running_stack_answers_every_generated_request_as_documented(case):
    # Given a request generated from the document (valid or not), sent over HTTP to the local API
    response = case.call()
    # Then it is never a server error, and status, headers and body are what the document says
    assert response.status_code < 500, response.text
    case.validate_response(response)
