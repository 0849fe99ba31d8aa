"""template.yaml and the code agree on callers and quotas: each route's JWT scope, the quota table, the limits."""

from __future__ import annotations

from typing import Any

import pytest

from devstack import aws_resources
from notifications import http_api
from notifications.settings import IngestSettings
from tests.template.conftest import load_template, resolve


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_with_jwt_each_route_requires_the_scope_the_code_documents(template):
    # https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html: "If you configure
    # scopes for a route, the token must include at least one of the route's scopes."
    paths = template["Resources"]["NotificationsApi"]["Properties"]["DefinitionBody"]["paths"]
    expected = {
        ("/v1/notifications", "post"): http_api.SEND_SCOPE,
        ("/v1/notifications/{id}", "get"): http_api.READ_SCOPE,
    }
    for (path, method), scope in expected.items():
        security = paths[path][method]["security"]
        assert resolve(security, {"UseJwtAuth": True}) == [{"JwtAuthorizer": [scope]}]
        assert resolve(security, {"UseJwtAuth": False}) == [{"AWS_IAM": []}]


def test_the_quota_table_is_the_one_the_counters_and_the_local_stack_use(template):
    resources = template["Resources"]
    table = resources["QuotaTable"]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "counter", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"]["SSEEnabled"] is True
    ingest = resources["IngestFunction"]["Properties"]
    assert ingest["Environment"]["Variables"]["QUOTA_TABLE_NAME"] == {"Ref": "QuotaTable"}
    assert "QUOTA_TABLE_NAME" in aws_resources.function_environment("b:9092")
    # The ingest only counts in it: a failed condition returns the counter (ReturnValuesOnConditionCheckFailure)
    statements = [s for p in ingest["Policies"] if isinstance(p, dict) for s in p.get("Statement", [])]
    on_table = [
        s for s in statements if isinstance(s, dict) and s.get("Resource") == {"Fn::GetAtt": ["QuotaTable", "Arn"]}
    ]
    assert [s["Action"] for s in on_table] == ["dynamodb:UpdateItem"]


def test_each_limit_is_a_parameter_whose_default_is_the_settings_default(template):
    variables = template["Resources"]["IngestFunction"]["Properties"]["Environment"]["Variables"]
    fields = IngestSettings.model_fields
    limits = {name for name in fields if name.startswith("quota_") and name != "quota_table_name"}
    assert {name.upper() for name in limits} <= set(variables)
    for name in limits:
        parameter = template["Parameters"][variables[name.upper()]["Ref"]]
        assert parameter["Default"] == fields[name].default, name
