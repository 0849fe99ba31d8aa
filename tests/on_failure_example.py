"""AWS's documented example of the record a Lambda Kafka trigger writes to a ``kafka://`` on-failure destination.

Copied field for field from the Lambda developer guide, "Using a Kafka topic as an on-failure destination",
section "Record format for a Kafka destination" / "Failure metadata":
https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html

Per the same page, Lambda produces it keyed with the original record's key ("Lambda uses the same partition key
from the original record when producing to the destination topic").
"""

from __future__ import annotations

import copy
import json
from typing import Any

_DOCUMENTED = """
{
  "requestContext": {
    "requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
    "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:my-function:$LATEST",
    "condition": "RetriesExhausted",
    "approximateInvokeCount": 3
  },
  "responseContext": {
    "statusCode": 200,
    "executedVersion": "$LATEST",
    "functionError": "Unhandled"
  },
  "version": "1.0",
  "timestamp": "2019-11-14T18:16:05.568Z",
  "KafkaBatchInfo": {
    "batchSize": 1,
    "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/my-cluster/abc123",
    "bootstrapServers": "b-1.mycluster.abc123.kafka.us-east-1.amazonaws.com:9098",
    "payloadSize": 1162,
    "recordInfo": {
      "offset": "49601189658422359378836298521827638475320189012309704722",
      "timestamp": "2019-11-14T18:16:04.835Z"
    }
  },
  "payload": {
    "bootstrapServers": "b-1.mycluster.abc123.kafka.us-east-1.amazonaws.com:9098",
    "eventSource": "aws:kafka",
    "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/my-cluster/abc123",
    "records": {
      "my-topic-0": [
        {
          "headers": [],
          "key": "dGVzdC1rZXk=",
          "offset": 100,
          "partition": 0,
          "timestamp": 1749116692330,
          "timestampType": "CREATE_TIME",
          "topic": "my-topic",
          "value": "dGVzdC12YWx1ZQ=="
        }
      ]
    }
  }
}
"""

# What the example's payload record decodes to.
EXAMPLE_TOPIC = "my-topic"
EXAMPLE_PARTITION = 0
EXAMPLE_OFFSET = 100
EXAMPLE_KEY = b"test-key"
EXAMPLE_VALUE = b"test-value"
EXAMPLE_CONDITION = "RetriesExhausted"


def documented_example() -> dict[str, Any]:
    """A fresh copy of the documented example."""
    return copy.deepcopy(json.loads(_DOCUMENTED))


def shape(value: Any) -> Any:
    """The keys and value types of a document. ``payload.records`` becomes the shape of its first record (the
    ``<topic>-<partition>`` names differ from one document to the next); other lists are just ``"list"``."""
    if isinstance(value, dict):
        if isinstance(value.get("records"), dict):
            first = next(record for group in value["records"].values() for record in group)
            value = {**value, "records": first}
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return "list"
    return type(value).__name__
