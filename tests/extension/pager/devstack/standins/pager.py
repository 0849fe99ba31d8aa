"""The pager service locally: the stack's HTTP receiver at ``/pager``, its URL and a token in a local secret."""

from __future__ import annotations

import json

from devstack.standins import Local, Prepared

SECRET = "notifications/pager"
TOKEN = "local-pager-token"


def prepare(local: Local) -> Prepared:
    secrets = local.aws.client("secretsmanager")
    value = json.dumps({"url": local.receiver_url("/pager"), "token": TOKEN})
    try:
        arn = secrets.create_secret(Name=SECRET, SecretString=value)["ARN"]
    except secrets.exceptions.ResourceExistsException:
        arn = secrets.put_secret_value(SecretId=SECRET, SecretString=value)["ARN"]
    return Prepared(environment={"PAGER_SECRET_ID": SECRET}, parameters={"PagerSecretArn": arn})
