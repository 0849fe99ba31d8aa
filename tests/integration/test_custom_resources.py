"""The stand-in of CloudFormation's pre-signed response URL (CloudFormation user guide, "Custom resource response
objects": https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html)."""

from __future__ import annotations

import json
import urllib.request

import pytest

from devstack.custom_resources import Responses

pytestmark = pytest.mark.integration


def test_the_answers_arrive_by_logical_id():
    # Given the stand-in of CloudFormation's pre-signed URL
    responses = Responses().start()
    try:
        # When a function PUTs its answer, as the topics function does
        body = json.dumps({"Status": "SUCCESS", "PhysicalResourceId": "p"}).encode()
        request = urllib.request.Request(f"{responses.url}/KafkaTopics", data=body, method="PUT")
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 200
    finally:
        responses.stop()
    # Then it is kept under the resource's logical id
    assert responses.answers == {"KafkaTopics": {"Status": "SUCCESS", "PhysicalResourceId": "p"}}
