"""What AWS authorizes for one API call, and how a service answers when IAM denies it.

Reproduced from AWS's documentation, per service:

* the IAM action(s), the resource ARN(s) and the service-specific condition keys AWS evaluates for a botocore
  operation: the "Service Authorization Reference"
  (https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html)
  and each service's developer guide, cited at each mapping below;
* the error a denied call gets back, on the service's own protocol, so that botocore's parser raises the same
  ``ClientError`` it raises on AWS: the message as in the IAM User Guide, "Troubleshoot access denied error
  messages" (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html), the body and
  status as in the Smithy protocol specifications (https://smithy.io/2.0/aws/protocols/index.html).

Only service-specific condition keys are set here; global ones (``aws:...``) belong to whoever evaluates. A key
with several values (``ses:Recipients``, ``dynamodb:LeadingKeys``, ``dynamodb:Attributes``) is not set: a
condition on one of them finds no value, as ``ForAllValues``/``ForAnyValue`` would over an empty set.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from functools import partial
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.model import OperationModel, ServiceModel

__all__ = ["Account", "Authorization", "UnknownOperation", "access_denied_message", "authorizations", "denial"]


@dataclass(frozen=True)
class Authorization:
    """One request to IAM: may the principal perform ``action`` on ``resource`` given ``context``?"""

    action: str  # e.g. "dynamodb:BatchGetItem"
    resource: str  # the ARN AWS evaluates, or "*" for an action without a resource type
    context: Mapping[str, str] = field(default_factory=dict)  # service-specific condition keys

    def __hash__(self) -> int:  # the context is a mapping: hash its items (the dataclass hash would fail on it)
        return hash((self.action, self.resource, frozenset(self.context.items())))


@dataclass(frozen=True)
class Account:
    """Where the calls are made, to build the ARNs AWS evaluates."""

    region: str  # e.g. "us-east-1"
    account_id: str  # e.g. "123456789012"
    partition: str = "aws"
    # Secrets Manager secret name -> full ARN (with the random suffix): a SecretId may be either.
    secret_arns: Mapping[str, str] = field(default_factory=dict)
    # The SES verified identities (domains and addresses), to find the one a From address sends through. Empty:
    # the From address's domain (see ``_ses_identity``).
    ses_identities: frozenset[str] = frozenset()

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account_id}:{resource}"


class UnknownOperation(LookupError):  # noqa: N818 - the name the stack's callers use
    """No mapping for this service and operation: the guard denies the call (nothing passes unchecked)."""

    def __init__(self, service: str, operation: str, reason: str = "") -> None:
        self.service = service
        self.operation = operation
        detail = f": {reason}" if reason else ""
        super().__init__(
            f"no IAM mapping for {service}.{operation}{detail}; "
            "add it to devstack.iam.requests from the Service Authorization Reference"
        )


def authorizations(service: str, operation: str, params: Mapping[str, Any], account: Account) -> list[Authorization]:
    """Every authorization AWS makes for ``operation`` of botocore's ``service`` called with ``params``.

    The call is allowed only when each is. Raises ``UnknownOperation`` for a call not mapped here, ``ValueError``
    for parameters the operation cannot have (botocore validates them before the call is sent).
    """
    mapper = _MAPPERS.get(service, {}).get(operation)
    if mapper is None:
        raise UnknownOperation(service, operation)
    try:
        return mapper(params, account)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{service}.{operation}: parameters not as the API defines them ({exc!r})") from exc


# --- DynamoDB --------------------------------------------------------------------------------------------------
# Service Authorization Reference, "Actions, resources, and condition keys for Amazon DynamoDB"
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html): each item and
# table operation is authorized as the action of its own name on the table ARN
# ``arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}``; Query and Scan on an index on the index ARN
# ``.../table/${TableName}/index/${IndexName}``; ListTables has no resource type ("*").
# The single-valued condition keys the reference lists for these actions are set from their parameters:
# dynamodb:ReturnValues, dynamodb:ReturnConsumedCapacity, dynamodb:Select.


def _table_arn(table: str, account: Account) -> str:
    """TableName may be the table's name or its ARN (DynamoDB API Reference, e.g. "GetItem": "You can also
    provide the Amazon Resource Name (ARN) of the table in this parameter")."""
    return table if table.startswith("arn:") else account.arn("dynamodb", f"table/{table}")


def _dynamodb_keys(params: Mapping[str, Any], *names: str) -> dict[str, str]:
    """The condition keys ``dynamodb:<name>`` of the parameters ``names`` the request sets."""
    return {f"dynamodb:{name}": str(params[name]) for name in names if params.get(name) is not None}


def _dynamodb_item(operation: str, params: Mapping[str, Any], account: Account) -> list[Authorization]:
    context = _dynamodb_keys(params, "ReturnValues", "ReturnConsumedCapacity")
    return [Authorization(f"dynamodb:{operation}", _table_arn(params["TableName"], account), context)]


def _dynamodb_read(operation: str, params: Mapping[str, Any], account: Account) -> list[Authorization]:
    """Query and Scan: on the index when IndexName is given, else on the table."""
    resource = _table_arn(params["TableName"], account)
    if params.get("IndexName"):
        resource = f"{resource}/index/{params['IndexName']}"
    context = _dynamodb_keys(params, "Select", "ReturnConsumedCapacity")
    return [Authorization(f"dynamodb:{operation}", resource, context)]


def _dynamodb_batch(operation: str, params: Mapping[str, Any], account: Account) -> list[Authorization]:
    """BatchGetItem and BatchWriteItem: their own action, once for each table in RequestItems (the reference
    lists both with the table resource type; the batch is denied when any table is)."""
    context = _dynamodb_keys(params, "ReturnConsumedCapacity")
    return [
        Authorization(f"dynamodb:{operation}", _table_arn(table, account), context) for table in params["RequestItems"]
    ]


# DynamoDB Developer Guide, "Using IAM with DynamoDB transactions"
# (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html): "Permissions for
# Put, Update, Delete, and Get actions are governed by the permissions used for the underlying PutItem,
# UpdateItem, DeleteItem, and GetItem operations. For the ConditionCheck action, you can use the
# dynamodb:ConditionCheckItem permission"; each is evaluated with dynamodb:EnclosingOperation set to the
# transaction's operation (the guide's examples 2 and 3 condition on it).
_TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}


def _dynamodb_transaction(
    operation: str, kinds: Sequence[str], params: Mapping[str, Any], account: Account
) -> list[Authorization]:
    found: list[Authorization] = []
    for item in params["TransactItems"]:
        [kind] = [name for name in item if name in kinds]
        context = {"dynamodb:EnclosingOperation": operation, **_dynamodb_keys(params, "ReturnConsumedCapacity")}
        found.append(Authorization(_TRANSACT_ACTIONS[kind], _table_arn(item[kind]["TableName"], account), context))
    return found


def _dynamodb_table(operation: str, params: Mapping[str, Any], account: Account) -> list[Authorization]:
    return [Authorization(f"dynamodb:{operation}", _table_arn(params["TableName"], account))]


def _no_resource(action: str, params: Mapping[str, Any], account: Account) -> list[Authorization]:
    return [Authorization(action, "*")]


# --- Secrets Manager -------------------------------------------------------------------------------------------
# Service Authorization Reference, "Actions, resources, and condition keys for AWS Secrets Manager"
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssecretsmanager.html): GetSecretValue,
# DescribeSecret and PutSecretValue on the secret ARN ``arn:${Partition}:secretsmanager:${Region}:${Account}:
# secret:${SecretId}``, the real ARN ending in "-" and six random characters (Secrets Manager User Guide,
# "Permissions policy examples": "Secrets Manager adds six random characters to the end of the secret name").
# SecretId is "The ARN or name of the secret" (API Reference, GetSecretValue), a partial ARN (without the suffix)
# included; AWS resolves it to the secret and evaluates the secret's ARN.


def _secret_arn(secret_id: str, account: Account) -> str:
    if secret_id.startswith("arn:"):
        for arn in account.secret_arns.values():  # a partial ARN: the known full ARN it names
            if arn.startswith(f"{secret_id}-") and len(arn) == len(secret_id) + 7:
                return arn
        return secret_id
    known = account.secret_arns.get(secret_id)
    if known is not None:
        return known
    # A name the stack does not know: its ARN without the random suffix. No policy naming the real (suffixed)
    # ARN matches it, as on AWS a policy cannot match a secret that does not exist; a wildcard ("name-*" or
    # "name*") may, as it would.
    return account.arn("secretsmanager", f"secret:{secret_id}")


def _secret(operation: str, params: Mapping[str, Any], account: Account) -> list[Authorization]:
    return [Authorization(f"secretsmanager:{operation}", _secret_arn(params["SecretId"], account))]


# --- SES v2 ----------------------------------------------------------------------------------------------------
# Service Authorization Reference, "Actions, resources, and condition keys for Amazon Simple Email Service v2"
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsimpleemailservicev2.html):
# ses:SendEmail has the resource types identity (required) and configuration-set, and the condition keys
# ses:ApiVersion, ses:FeedbackAddress, ses:FromAddress, ses:FromDisplayName and ses:Recipients. SES Developer
# Guide, "Identity and access management in Amazon SES"
# (https://docs.aws.amazon.com/ses/latest/dg/control-user-access.html): Resource is the ARN of the identity sent
# from; ses:FromAddress is the "From" address, ses:FromDisplayName its display name, ses:ApiVersion "2" for the
# v2 API. Each resource is evaluated (so authorized) on its own: one Authorization for each.


def _ses_identity(address: str, account: Account) -> str:
    """The verified identity a From address sends through: the address itself when it is verified, else its
    domain or the nearest verified parent domain. SES Developer Guide, "Creating a sending authorization policy"
    (https://docs.aws.amazon.com/ses/latest/dg/sending-authorization-identity-owner-tasks-policy.html): policies
    of an email address identity "take precedence over policies that you attach to their corresponding domain
    identities"; "Verified identities" (https://docs.aws.amazon.com/ses/latest/dg/verify-addresses-and-domains.html):
    a verified domain covers its subdomains. With no identities given (or none matching), the address's domain.
    """
    domain = address.rpartition("@")[2]
    identities = {identity.lower() for identity in account.ses_identities}
    if address.lower() in identities:
        return address
    labels = domain.split(".")
    for start in range(len(labels) - 1):
        candidate = ".".join(labels[start:])
        if candidate.lower() in identities:
            return candidate
    return domain


def _ses_send_email(params: Mapping[str, Any], account: Account) -> list[Authorization]:
    display_name, address = parseaddr(params.get("FromEmailAddress") or "")
    context = {"ses:ApiVersion": "2"}
    if address:
        context["ses:FromAddress"] = address
    if display_name:
        context["ses:FromDisplayName"] = display_name
    if params.get("FeedbackForwardingEmailAddress"):
        context["ses:FeedbackAddress"] = parseaddr(params["FeedbackForwardingEmailAddress"])[1]
    # Sending authorization: "FromEmailAddressIdentityArn" names the identity the sender is authorized to use
    # (SES API v2 Reference, SendEmail); without it, the identity the From address belongs to.
    identity = params.get("FromEmailAddressIdentityArn")
    if not identity:
        if not address:
            # No From address: SES v2 takes the sender from the raw message's headers, which are not parsed here.
            raise UnknownOperation("sesv2", "SendEmail", "no FromEmailAddress (the raw message's From is not read)")
        identity = account.arn("ses", f"identity/{_ses_identity(address, account)}")
    found = [Authorization("ses:SendEmail", identity, context)]
    if params.get("ConfigurationSetName"):
        configuration_set = account.arn("ses", f"configuration-set/{params['ConfigurationSetName']}")
        found.append(Authorization("ses:SendEmail", configuration_set, context))
    return found


# --- SNS -------------------------------------------------------------------------------------------------------
# Service Authorization Reference, "Actions, resources, and condition keys for Amazon SNS"
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsns.html): sns:Publish on the topic
# ARN; SNS Developer Guide, "Mobile text messaging (SMS)" / "Publishing SMS messages": a message published
# straight to a phone number has no resource (IAM needs "Resource": "*"), and sns:SetSMSAttributes has no
# resource type.


def _sns_publish(params: Mapping[str, Any], account: Account) -> list[Authorization]:
    target = params.get("TopicArn") or params.get("TargetArn")
    if target:
        return [Authorization("sns:Publish", target)]
    if params.get("PhoneNumber"):
        return [Authorization("sns:Publish", "*")]
    raise ValueError("sns.Publish: none of TopicArn, TargetArn or PhoneNumber")


def _sns_set_sms_attributes(params: Mapping[str, Any], account: Account) -> list[Authorization]:
    """sns:SetSMSAttributes (no resource); naming the role SNS writes delivery-status logs with passes that role to
    SNS, which needs iam:PassRole on it for sns.amazonaws.com (IAM User Guide, "Grant a user permissions to pass a
    role to an AWS service": https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html)."""
    needed = [Authorization("sns:SetSMSAttributes", "*")]
    role = (params.get("attributes") or {}).get("DeliveryStatusIAMRole")
    if role:
        needed.append(Authorization("iam:PassRole", role, {"iam:PassedToService": "sns.amazonaws.com"}))
    return needed


# --- SQS -------------------------------------------------------------------------------------------------------
# Service Authorization Reference, "Actions, resources, and condition keys for Amazon SQS"
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsqs.html): sqs:SendMessage on the
# queue ARN ``arn:${Partition}:sqs:${Region}:${Account}:${QueueName}``. SQS Developer Guide, "Amazon SQS API
# permissions: Actions and resource reference": SendMessageBatch is authorized as sqs:SendMessage.


def _queue_arn(queue_url: str, account: Account) -> str:
    """A queue URL is ``https://sqs.<region>.amazonaws.com/<account>/<name>`` (SQS Developer Guide, "Amazon SQS
    queue and message identifiers"); a local endpoint keeps the path, so the region is then the account's."""
    parts = urlsplit(queue_url)
    path = [segment for segment in parts.path.split("/") if segment]
    if len(path) < 2:
        raise ValueError(f"not a queue URL: {queue_url!r}")
    owner, name = path[-2], path[-1]
    host = (parts.hostname or "").split(".")
    region = host[1] if len(host) > 2 and host[0] == "sqs" and host[1] != "amazonaws" else account.region
    return f"arn:{account.partition}:sqs:{region}:{owner}:{name}"


def _sqs_send(params: Mapping[str, Any], account: Account) -> list[Authorization]:
    return [Authorization("sqs:SendMessage", _queue_arn(params["QueueUrl"], account))]


_Mapper = Callable[[Mapping[str, Any], Account], list[Authorization]]

_MAPPERS: dict[str, dict[str, _Mapper]] = {
    "dynamodb": {
        **{op: partial(_dynamodb_item, op) for op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")},
        **{op: partial(_dynamodb_read, op) for op in ("Query", "Scan")},
        **{op: partial(_dynamodb_batch, op) for op in ("BatchGetItem", "BatchWriteItem")},
        "TransactWriteItems": partial(
            _dynamodb_transaction, "TransactWriteItems", ("Put", "Update", "Delete", "ConditionCheck")
        ),
        "TransactGetItems": partial(_dynamodb_transaction, "TransactGetItems", ("Get",)),
        "DescribeTable": partial(_dynamodb_table, "DescribeTable"),
        "ListTables": partial(_no_resource, "dynamodb:ListTables"),
    },
    "secretsmanager": {op: partial(_secret, op) for op in ("GetSecretValue", "DescribeSecret", "PutSecretValue")},
    "sesv2": {"SendEmail": _ses_send_email},
    "sns": {"Publish": _sns_publish, "SetSMSAttributes": _sns_set_sms_attributes},
    "sqs": {"SendMessage": _sqs_send, "SendMessageBatch": _sqs_send},
}


# --- The denial ------------------------------------------------------------------------------------------------


def access_denied_message(
    principal_arn: str, authorization: Authorization, *, explicit: bool = False, action_label: str | None = None
) -> str:
    """IAM User Guide, "Troubleshoot access denied error messages"
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html): "User: <principal> is not
    authorized to perform: <action> on resource: <resource> because no identity-based policy allows the <action>
    action", or "... with an explicit deny in an identity-based policy". An action without a resource is named
    without "on resource:" (the guide's codecommit:ListRepositories example)."""
    action = action_label or authorization.action
    on_resource = "" if authorization.resource == "*" else f" on resource: {authorization.resource}"
    reason = (
        "with an explicit deny in an identity-based policy"
        if explicit
        else f"because no identity-based policy allows the {action} action"
    )
    return f"User: {principal_arn} is not authorized to perform: {action}{on_resource} {reason}"


# The error code a service answers an IAM denial with, where it is not the protocol's usual one. SNS API Reference,
# "Publish" (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html), Errors: "AuthorizationError ... HTTP
# Status Code: 403".
_ERROR_CODES = {"sns": "AuthorizationError"}
# SNS names its actions "SNS:Publish" in its denial messages (the action prefix is case-insensitive in policies).
_ACTION_LABELS = {"sns": lambda action: "SNS:" + action.partition(":")[2]}
# The awsJson protocols: the error type as the service sends it in "__type" (botocore keeps what follows "#").
_JSON_ERROR_TYPES = {"secretsmanager": "AccessDeniedException"}
_CORAL_ACCESS_DENIED = "com.amazon.coral.service#AccessDeniedException"
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


class _Body:
    """The raw stream an ``AWSResponse`` reads its content from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def denial(
    service_model: ServiceModel,
    operation_model: OperationModel,
    principal_arn: str,
    authorization: Authorization,
    *,
    explicit: bool = False,
) -> AWSResponse:
    """The HTTP response the service sends when IAM denies ``authorization``, on the service's protocol
    (``service_model.resolved_protocol``, the one botocore speaks to it), for botocore to parse and raise.

    Smithy, "AWS protocols" (https://smithy.io/2.0/aws/protocols/index.html): awsJson1_0/1_1 put the error in
    ``__type`` (and, query-compatible, its query code in ``x-amzn-query-error``); restJson1 in the
    ``x-amzn-ErrorType`` header; awsQuery in ``ErrorResponse/Error/Code``; restXml in ``Error/Code``; ec2Query in
    ``Response/Errors/Error/Code``; rpcv2Cbor in a CBOR ``__type``.
    """
    service = service_model.service_name
    label = _ACTION_LABELS.get(service)
    message = access_denied_message(
        principal_arn, authorization, explicit=explicit, action_label=label(authorization.action) if label else None
    )
    request_id = str(uuid.uuid4())
    protocol = getattr(service_model, "resolved_protocol", None) or service_model.protocol
    url = f"https://{service_model.endpoint_prefix}.{_region_of(authorization)}.amazonaws.com/"
    status, headers, body = _PROTOCOLS[protocol](service_model, message, request_id)
    headers = {**headers, "x-amzn-RequestId": request_id, "Content-Length": str(len(body))}
    # ``operation_model`` is not needed: every operation of a service answers a denial alike.
    return AWSResponse(url, status, HTTPHeaders.from_dict(headers), _Body(body))


def _region_of(authorization: Authorization) -> str:
    parts = authorization.resource.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else "us-east-1"


def _json(service_model: ServiceModel, message: str, request_id: str) -> tuple[int, dict[str, str], bytes]:
    # awsJson1_0/1_1: an IAM denial is HTTP 400 with the coral AccessDeniedException (DynamoDB Developer Guide,
    # "Error handling with DynamoDB": "AccessDeniedException ... HTTP 400"; Secrets Manager API Reference,
    # "Common Errors": "AccessDeniedException ... HTTP Status Code: 400").
    headers = {"Content-Type": f"application/x-amz-json-{service_model.metadata.get('jsonVersion', '1.0')}"}
    status = 400
    if "awsQueryCompatible" in service_model.metadata:
        # A service moved from awsQuery keeps its query error code in x-amzn-query-error ("code;fault", Smithy
        # "awsQueryCompatible trait"), which botocore reports as the code: SQS answered a denial on awsQuery with
        # <Code>AccessDenied</Code>, HTTP 403, and keeps both.
        headers["x-amzn-query-error"] = f"{_ERROR_CODES.get(service_model.service_name, 'AccessDenied')};Sender"
        status = 403
    error_type = _JSON_ERROR_TYPES.get(service_model.service_name, _CORAL_ACCESS_DENIED)
    return status, headers, json.dumps({"__type": error_type, "Message": message}).encode()


def _rest_json(service_model: ServiceModel, message: str, request_id: str) -> tuple[int, dict[str, str], bytes]:
    # restJson1: HTTP 403, the error type in x-amzn-ErrorType (SES API v2 Reference, "Common Errors":
    # "AccessDeniedException ... HTTP Status Code: 403").
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": "AccessDeniedException"}
    return 403, headers, json.dumps({"message": message}).encode()


def _query(service_model: ServiceModel, message: str, request_id: str) -> tuple[int, dict[str, str], bytes]:
    code = _ERROR_CODES.get(service_model.service_name, "AccessDenied")
    namespace = service_model.metadata.get("xmlNamespace")
    xmlns = f' xmlns="{escape(namespace)}"' if namespace else ""
    error = f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    body = f"<ErrorResponse{xmlns}>{error}<RequestId>{request_id}</RequestId></ErrorResponse>"
    return 403, {"Content-Type": "text/xml"}, body.encode()


def _rest_xml(service_model: ServiceModel, message: str, request_id: str) -> tuple[int, dict[str, str], bytes]:
    # Amazon S3 API Reference, "Error responses": "AccessDenied ... 403 Forbidden".
    error = f"<Code>AccessDenied</Code><Message>{escape(message)}</Message><RequestId>{request_id}</RequestId>"
    return 403, {"Content-Type": "application/xml"}, f"{_XML_DECLARATION}<Error>{error}</Error>".encode()


def _ec2(service_model: ServiceModel, message: str, request_id: str) -> tuple[int, dict[str, str], bytes]:
    # Amazon EC2 API Reference, "Error codes": "UnauthorizedOperation ... You are not authorized to perform this
    # operation", HTTP 403.
    text = escape(f"You are not authorized to perform this operation. {message}")
    error = f"<Errors><Error><Code>UnauthorizedOperation</Code><Message>{text}</Message></Error></Errors>"
    body = f"{_XML_DECLARATION}<Response>{error}<RequestID>{request_id}</RequestID></Response>"
    return 403, {"Content-Type": "text/xml;charset=UTF-8"}, body.encode()


def _cbor(service_model: ServiceModel, message: str, request_id: str) -> tuple[int, dict[str, str], bytes]:
    # Smithy, "RPC v2 CBOR protocol": errors carry "__type" in a CBOR map; the header smithy-protocol names it.
    headers = {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
    return 400, headers, _cbor_map({"__type": _CORAL_ACCESS_DENIED, "message": message})


def _cbor_head(major: int, length: int) -> bytes:
    """RFC 8949, section 3: the initial byte (major type, argument) and the argument's bytes."""
    if length < 24:
        return bytes([major << 5 | length])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if length < 1 << (8 * size):
            return bytes([major << 5 | extra]) + length.to_bytes(size, "big")
    raise ValueError("too long for CBOR")


def _cbor_map(values: Mapping[str, str]) -> bytes:
    """A CBOR map (major type 5) of text strings (major type 3)."""
    out = bytearray(_cbor_head(5, len(values)))
    for key, value in values.items():
        for text in (key, value):
            encoded = text.encode()
            out += _cbor_head(3, len(encoded)) + encoded
    return bytes(out)


_PROTOCOLS: dict[str, Callable[[ServiceModel, str, str], tuple[int, dict[str, str], bytes]]] = {
    "json": _json,
    "rest-json": _rest_json,
    "query": _query,
    "rest-xml": _rest_xml,
    "ec2": _ec2,
    "smithy-rpc-v2-cbor": _cbor,
}
