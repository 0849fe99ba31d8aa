"""The environment a function runs with in the local stack signs AWS requests as Lambda's runtime does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from devstack.stack import function_environment
from devstack.template_config import load_template

SIGNER = """
import json
import boto3
from botocore import auth, compat
client = boto3.session.Session().client("dynamodb", region_name="eu-west-1", endpoint_url="http://127.0.0.1:1")
signer = auth.AUTH_TYPE_MAPS[client.meta.config.signature_version or "v4"]
print(json.dumps({"crt": compat.HAS_CRT, "signer": signer.__name__}))
"""


def test_functions_sign_requests_without_the_crt_as_in_lambda():
    """Lambda's Python runtimes have boto3 without awscrt (https://github.com/aws/aws-lambda-base-images/issues/147);
    the dev environment has awscrt, which botocore would otherwise sign with."""
    # Given the environment the local stack gives the ingest function
    spec = load_template().function("IngestFunction")
    env = function_environment(
        spec, bootstrap="127.0.0.1:1", aws_endpoint="http://127.0.0.1:1", base=os.environ, backoff=0.5
    )

    # When botocore picks its SigV4 signer in a process with that environment
    result = subprocess.run([sys.executable, "-c", SIGNER], env=env, capture_output=True, text=True, check=True)

    # Then it is botocore's own Python signer, not the CRT one
    assert json.loads(result.stdout) == {"crt": False, "signer": "SigV4Auth"}
