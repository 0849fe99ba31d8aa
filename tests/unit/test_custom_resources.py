"""The template's custom resources as CloudFormation creates them (CloudFormation user guide, "Custom resource
request objects": https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requests.html)."""

from __future__ import annotations

from devstack.custom_resources import custom_resources
from devstack.iam.roles import deployment
from devstack.permissions import physical_ids
from notifications.registry import Channel


def test_each_custom_resource_of_the_template_is_a_create_request_to_its_function():
    # Given the translated template of a deployment
    document, resolver = deployment(
        physical_ids({}),
        {
            "KafkaClusterArn": "arn:aws:kafka:us-east-1:123456789012:cluster/c/u",
            "KafkaBootstrapServers": "b:9098",
            "SubnetIds": ["s"],
            "SecurityGroupIds": ["g"],
            "EmailFromAddress": "a@b.c",
            "SesIdentity": "b.c",
            "DestinationSecretPrefix": "d",
        },
    )
    # When its custom resources are read
    resources = {r.logical_id: r for r in custom_resources(document, resolver)}

    # Then every one is there, served by the topics function, with its properties evaluated
    channel_topics = {f"{channel.value.capitalize()}Topic" for channel in Channel}
    assert set(resources) == {"KafkaTopics", "SmsSpendLimit", *channel_topics}
    assert {r.function for r in resources.values()} == {"TopicsFunction"}
    assert resources["EmailTopic"].properties["Topics"] == ["notifications.email"]
    assert resources["KafkaTopics"].properties["BootstrapServers"] == "b:9098"
    event = resources["SmsSpendLimit"].create_event("http://127.0.0.1:1/cloudformation")
    assert (event["RequestType"], event["LogicalResourceId"], event["ResourceType"]) == (
        "Create",
        "SmsSpendLimit",
        "Custom::SmsSpendLimit",
    )
    assert event["ResponseURL"] == "http://127.0.0.1:1/cloudformation/SmsSpendLimit"
