"""The local API's routes are the template's HttpApi events: a route added to template.yaml is served as deployed."""

from __future__ import annotations

from pathlib import Path

from devstack.apigw import http_api_event, local_arn, template_routes
from devstack.http_server import HttpApiServer
from devstack.on_failure import function_arn
from devstack.template_config import DEFAULT_TEMPLATE, HttpRoute, load_template

GET_EVENT = (
    "        GetNotification: {Type: HttpApi, Properties:"
    ' {ApiId: !Ref NotificationsApi, Path: "/v1/notifications/{id}", Method: GET}}\n'
)
CANCEL_EVENT = (
    "        CancelNotification: {Type: HttpApi, Properties:"
    ' {ApiId: !Ref NotificationsApi, Path: "/v1/notifications/{id}/cancel", Method: POST}}\n'
)


def test_the_routes_are_the_http_api_events_of_the_template():
    assert set(template_routes()) == {
        HttpRoute("POST", "/v1/notifications"),
        HttpRoute("GET", "/v1/notifications/{id}"),
    }
    event = http_api_event("GET", "/v1/notifications/abc")
    assert (event["routeKey"], event["pathParameters"]) == ("GET /v1/notifications/{id}", {"id": "abc"})
    assert http_api_event("DELETE", "/v1/notifications/abc")["routeKey"] == "$default"


def test_a_route_added_to_the_template_is_served_locally(tmp_path: Path):
    # Given a template whose ingest function has one more HttpApi event
    source = DEFAULT_TEMPLATE.read_text()
    assert GET_EVENT in source
    template = tmp_path / "template.yaml"
    template.write_text(source.replace(GET_EVENT, GET_EVENT + CANCEL_EVENT))
    spec = load_template(template).function("IngestFunction")
    assert HttpRoute("POST", "/v1/notifications/{id}/cancel") in spec.http_routes

    # When the local API of that function (as the function worker starts it) is called on the new route
    events: list[dict] = []

    def handler(event, context):
        events.append(event)
        return {"statusCode": 204}

    api = HttpApiServer(handler, function_name=spec.logical_id, routes=spec.http_routes, port=0)
    try:
        result = api.invoke("POST", "/v1/notifications/abc/cancel", {}, None)
    finally:
        api.stop()

    # Then the function gets the route's key and path parameters, as API Gateway sends them
    assert result.status == 204
    [event] = events
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "POST /v1/notifications/{id}/cancel"
    assert event["pathParameters"] == {"id": "abc"}
    assert http_api_event("POST", "/v1/notifications/abc/cancel")["routeKey"] == "$default"  # not in template.yaml


def test_a_route_of_its_own_method_wins_over_any():
    routes = (HttpRoute("ANY", "/v1/things/{id}"), HttpRoute("GET", "/v1/things/{id}"))
    assert http_api_event("GET", "/v1/things/1", routes=routes)["routeKey"] == "GET /v1/things/{id}"
    assert http_api_event("PUT", "/v1/things/1", routes=routes)["routeKey"] == "ANY /v1/things/{id}"


def test_local_arns_are_of_the_local_account():
    assert local_arn("iam", "user/shop") == "arn:aws:iam::123456789012:user/shop"
    assert function_arn("FanoutFunction") == "arn:aws:lambda:us-east-1:123456789012:function:FanoutFunction:$LATEST"
