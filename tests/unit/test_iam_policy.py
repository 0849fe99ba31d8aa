"""The local stack's IAM identity-policy evaluator, against the behaviour the IAM User Guide documents.

Each test names the page it reproduces; all are under https://docs.aws.amazon.com/IAM/latest/UserGuide/.
"""

from __future__ import annotations

from typing import Any

import pytest

from devstack.iam.policy import Decision, Evaluation, PolicyError, Statement, evaluate, statements

ACCOUNT = "123456789012"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/notifications-status"
IDENTITY = f"arn:aws:ses:us-east-1:{ACCOUNT}:identity/example.com"
CONFIGURATION_SET = f"arn:aws:ses:us-east-1:{ACCOUNT}:configuration-set/notifications"


def policy(*statement: dict[str, Any], source: str = "TestRole/TestPolicy") -> list[Statement]:
    return statements({"Version": "2012-10-17", "Statement": list(statement)}, source)


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def send_email_from(address: str | None) -> Evaluation:
    """The sender role's SendEmail statement (template.yaml, EmailSenderFunction) and one SendEmail call."""
    role = policy(
        allow(
            "ses:SendEmail",
            [IDENTITY, CONFIGURATION_SET],
            Sid="SendEmail",
            Condition={"StringEquals": {"ses:FromAddress": "notifications@example.com"}},
        )
    )
    return evaluate(role, "ses:SendEmail", IDENTITY, {} if address is None else {"ses:FromAddress": address})


# --- Evaluation logic -------------------------------------------------------------------------------------------


def test_an_explicit_deny_overrides_an_allow():
    # reference_policies_evaluation-logic_policy-eval-denyallow.html: "An explicit deny overrides an explicit allow."
    # Given a role that allows every DynamoDB action and denies DeleteItem on the status table
    role = policy(
        allow("dynamodb:*", "*", Sid="All"),
        {"Sid": "NoDeletes", "Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": TABLE},
    )

    # When it deletes an item from that table, and reads one
    delete = evaluate(role, "dynamodb:DeleteItem", TABLE)
    read = evaluate(role, "dynamodb:GetItem", TABLE)

    # Then the delete is explicitly denied by the Deny statement only; the read is allowed by the Allow
    assert delete.decision is Decision.EXPLICIT_DENY
    assert [s.sid for s in delete.statements] == ["NoDeletes"]
    assert not delete.allowed
    assert read.decision is Decision.ALLOW
    assert [s.sid for s in read.statements] == ["All"]
    assert read.allowed


def test_a_request_no_statement_allows_is_implicitly_denied():
    # reference_policies_evaluation-logic_policy-eval-denyallow.html: "By default, all requests are implicitly denied"
    # Given a role that may only read the status table
    role = policy(allow("dynamodb:GetItem", TABLE))

    # When it writes to it, or calls anything with no policy at all
    write = evaluate(role, "dynamodb:PutItem", TABLE)
    nothing = evaluate([], "dynamodb:GetItem", TABLE)

    # Then both are implicitly (not explicitly) denied, with no statement to blame
    assert write == Evaluation(Decision.IMPLICIT_DENY, ())
    assert nothing == Evaluation(Decision.IMPLICIT_DENY, ())


def test_every_matching_allow_is_reported_and_statements_keep_their_source():
    # reference_policies_evaluation-logic_policy-eval-basics.html: AWS looks for at least one Allow among the policies
    # Given two policies of one role that both allow GetItem on the table, and one that does not
    role = [
        *policy(allow("dynamodb:GetItem", TABLE, Sid="Read"), source="Role/Policy1"),
        *policy(allow("dynamodb:Query", TABLE, Sid="Query"), source="Role/Policy2"),
        *policy(allow("dynamodb:Get*", "*", Sid="AnyGet"), source="AmazonDynamoDBReadOnlyAccess"),
    ]

    # When it reads an item
    result = evaluate(role, "dynamodb:GetItem", TABLE)

    # Then it is allowed, and the evaluation names both allowing statements with their source
    assert result.decision is Decision.ALLOW
    assert [(s.source, s.sid) for s in result.statements] == [
        ("Role/Policy1", "Read"),
        ("AmazonDynamoDBReadOnlyAccess", "AnyGet"),
    ]


# --- Action -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "action", "decision"),
    [
        ("dynamodb:*", "dynamodb:GetItem", Decision.ALLOW),
        ("dynamodb:*", "s3:GetObject", Decision.IMPLICIT_DENY),
        ("dynamodb:Get*", "dynamodb:GetItem", Decision.ALLOW),
        ("dynamodb:Get*", "dynamodb:BatchGetItem", Decision.IMPLICIT_DENY),
        ("dynamodb:Get*", "dynamodb:PutItem", Decision.IMPLICIT_DENY),
        ("s3:?etObject", "s3:GetObject", Decision.ALLOW),
        ("s3:?utObject", "s3:PutObject", Decision.ALLOW),
        ("s3:?etObject", "s3:etObject", Decision.IMPLICIT_DENY),  # ? is exactly one character
        ("s3:?etObject", "s3:GetObjectAcl", Decision.IMPLICIT_DENY),  # the whole name must match
        ("*", "kafka-cluster:WriteData", Decision.ALLOW),
    ],
)
def test_action_wildcards(pattern, action, decision):
    # reference_policies_elements_action.html: wildcards (* or ?) anywhere in the action name
    # Given a role allowing the action pattern on every resource
    role = policy(allow(pattern))

    # When the action is called
    result = evaluate(role, action, TABLE)

    # Then the decision is the documented one
    assert result.decision is decision


@pytest.mark.parametrize("action", ["DynamoDB:getitem", "DYNAMODB:GETITEM", "dynamodb:getItem"])
def test_actions_match_case_insensitively(action):
    # reference_policies_elements_action.html: "Action ... values are case-insensitive"
    # Given a role allowing dynamodb:GetItem, and one allowing dynamodb:get* in lower case
    exact = policy(allow("dynamodb:GetItem", TABLE))
    lower_wildcard = policy(allow("dynamodb:get*", TABLE))

    # When the action is called spelled another way
    # Then both allow it
    assert evaluate(exact, action, TABLE).decision is Decision.ALLOW
    assert evaluate(lower_wildcard, action, TABLE).decision is Decision.ALLOW


def test_allow_with_not_action_allows_everything_but_the_listed_actions():
    # reference_policies_elements_notaction.html, "Using NotAction with Allow": everything except IAM
    # Given a role allowing every action except iam:*
    role = policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})

    # When it reads from S3 and creates an IAM user
    read = evaluate(role, "s3:GetObject", "arn:aws:s3:::bucket/key")
    create_user = evaluate(role, "iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/eve")

    # Then the read is allowed; the IAM call is only implicitly denied (NotAction with Allow does not deny it)
    assert read.decision is Decision.ALLOW
    assert create_user.decision is Decision.IMPLICIT_DENY


def test_deny_with_not_action_denies_everything_but_the_listed_actions_without_mfa():
    # reference_policies_elements_notaction.html, "Using NotAction with Deny": deny all but the MFA set-up actions
    # unless the caller signed in with MFA (BoolIfExists aws:MultiFactorAuthPresent false)
    # Given a role allowing everything, with the documented Deny/NotAction statement
    role = policy(
        allow("*", "*", Sid="Everything"),
        {
            "Sid": "DenyAllUsersNotUsingMFA",
            "Effect": "Deny",
            "NotAction": ["iam:CreateVirtualMFADevice", "iam:EnableMFADevice", "iam:ListMFADevices"],
            "Resource": "*",
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
        },
    )

    # When, without MFA, it reads an object and enables an MFA device; and reads the object with MFA
    no_mfa = {"aws:MultiFactorAuthPresent": "false"}
    read_without = evaluate(role, "s3:GetObject", "arn:aws:s3:::bucket/key", no_mfa)
    enable_mfa = evaluate(role, "iam:EnableMFADevice", f"arn:aws:iam::{ACCOUNT}:user/eve", no_mfa)
    read_with = evaluate(role, "s3:GetObject", "arn:aws:s3:::bucket/key", {"aws:MultiFactorAuthPresent": "true"})
    read_unknown = evaluate(role, "s3:GetObject", "arn:aws:s3:::bucket/key")

    # Then only the listed action gets through without MFA; with MFA the Deny does not apply; a missing key (IfExists)
    # makes the Deny apply
    assert read_without.decision is Decision.EXPLICIT_DENY
    assert enable_mfa.decision is Decision.ALLOW
    assert read_with.decision is Decision.ALLOW
    assert read_unknown.decision is Decision.EXPLICIT_DENY


# --- Resource ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "resource", "decision"),
    [
        (f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/notif*", TABLE, Decision.ALLOW),
        (
            f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/notif*",
            f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/quota",
            Decision.IMPLICIT_DENY,
        ),
        # case-sensitive
        (f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/Notif*", TABLE, Decision.IMPLICIT_DENY),
        # an index is its own resource: the table's ARN does not cover it, table/T/index/* does
        (TABLE, f"{TABLE}/index/provider_message_id-index", Decision.IMPLICIT_DENY),
        (f"{TABLE}/index/*", f"{TABLE}/index/provider_message_id-index", Decision.ALLOW),
        (f"{TABLE}/index/*", TABLE, Decision.IMPLICIT_DENY),
        # * spans / and : ; ? is one character
        ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b/c.json", Decision.ALLOW),
        (
            f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/lambda/*",
            f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/lambda/ingest:log-stream:2024/01/01/abc",
            Decision.ALLOW,
        ),
        ("arn:aws:dynamodb:*:*:table/notif*", TABLE, Decision.ALLOW),
        (f"arn:aws:dynamodb:us-east-?:{ACCOUNT}:table/notifications-status", TABLE, Decision.ALLOW),
        (
            f"arn:aws:dynamodb:us-east-?:{ACCOUNT}:table/notifications-status",
            TABLE.replace("-1:", "-10:"),
            Decision.IMPLICIT_DENY,
        ),
        # literal characters are literal (. is not "any character")
        ("arn:aws:s3:::my.bucket/*", "arn:aws:s3:::myXbucket/key", Decision.IMPLICIT_DENY),
        ("*", TABLE, Decision.ALLOW),
    ],
)
def test_resource_arns_with_wildcards(pattern, resource, decision):
    # reference_policies_elements_resource.html: "You can use wildcard characters (* and ?) within any ARN segment"
    # Given a role allowing every action on the resource pattern
    role = policy(allow("*", pattern))

    # When it calls something on the resource
    result = evaluate(role, "dynamodb:Query", resource)

    # Then the decision is the documented one
    assert result.decision is decision


def test_deny_with_not_resource_denies_every_other_resource():
    # reference_policies_elements_notresource.html: deny all S3 outside the HRBucket/Payroll folder
    # Given a role allowing S3, and denying it on everything but the payroll objects
    role = policy(
        allow("s3:*", "*"),
        {
            "Effect": "Deny",
            "Action": "s3:*",
            "NotResource": ["arn:aws:s3:::HRBucket/Payroll", "arn:aws:s3:::HRBucket/Payroll/*"],
        },
    )

    # When it reads a payroll object and another object
    payroll = evaluate(role, "s3:GetObject", "arn:aws:s3:::HRBucket/Payroll/2024.csv")
    other = evaluate(role, "s3:GetObject", "arn:aws:s3:::HRBucket/Public/handbook.pdf")

    # Then the payroll read is allowed, the other one explicitly denied
    assert payroll.decision is Decision.ALLOW
    assert other.decision is Decision.EXPLICIT_DENY


def test_allow_with_not_resource_allows_every_other_resource():
    # reference_policies_elements_notresource.html: NotResource matches every resource except the listed ones
    # Given a role allowing DynamoDB reads on everything but the suppression table
    suppression = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/notifications-suppression"
    role = policy({"Effect": "Allow", "Action": "dynamodb:GetItem", "NotResource": suppression})

    # When it reads the status table and the suppression table
    # Then the first is allowed and the second implicitly denied
    assert evaluate(role, "dynamodb:GetItem", TABLE).decision is Decision.ALLOW
    assert evaluate(role, "dynamodb:GetItem", suppression).decision is Decision.IMPLICIT_DENY


# --- Condition --------------------------------------------------------------------------------------------------


def test_string_equals_on_the_from_address():
    # reference_policies_elements_condition_operators.html, String condition operators: StringEquals, exact match
    # Given the sender role that may send only from notifications@example.com (template.yaml)
    # When it sends from that address, from another one, with another case, and with no from address at all
    same = send_email_from("notifications@example.com")
    other = send_email_from("marketing@example.com")
    case = send_email_from("Notifications@example.com")
    missing = send_email_from(None)

    # Then only the exact address is allowed; a missing key makes the condition false
    assert same.decision is Decision.ALLOW
    assert other.decision is Decision.IMPLICIT_DENY
    assert case.decision is Decision.IMPLICIT_DENY
    assert missing.decision is Decision.IMPLICIT_DENY


@pytest.mark.parametrize(
    ("address", "decision"),
    [
        ("notifications@example.com", Decision.ALLOW),
        ("x@example.com", Decision.ALLOW),
        ("x@example.co", Decision.IMPLICIT_DENY),
        ("x@EXAMPLE.com", Decision.IMPLICIT_DENY),  # StringLike is case-sensitive
        ("x@mail.example.com", Decision.IMPLICIT_DENY),
    ],
)
def test_string_like_with_wildcards(address, decision):
    # reference_policies_elements_condition_operators.html, StringLike: case-sensitive, * and ? anywhere
    # Given a role that may send from any address at example.com
    role = policy(allow("ses:SendEmail", IDENTITY, Condition={"StringLike": {"ses:FromAddress": "*@example.com"}}))

    # When it sends from the address
    result = evaluate(role, "ses:SendEmail", IDENTITY, {"ses:FromAddress": address})

    # Then the decision is the documented one
    assert result.decision is decision


def test_string_equals_ignore_case():
    # reference_policies_elements_condition_operators.html, StringEqualsIgnoreCase
    # Given a role that may send from notifications@example.com, whatever the case
    role = policy(
        allow(
            "ses:SendEmail",
            IDENTITY,
            Condition={"StringEqualsIgnoreCase": {"ses:FromAddress": "Notifications@Example.com"}},
        )
    )

    # When it sends from the address in lower case, and from another address
    # Then the first is allowed, the second implicitly denied
    assert evaluate(role, "ses:SendEmail", IDENTITY, {"ses:FromAddress": "notifications@example.com"}).allowed
    assert (
        evaluate(role, "ses:SendEmail", IDENTITY, {"ses:FromAddress": "other@example.com"}).decision
        is Decision.IMPLICIT_DENY
    )


def test_condition_key_names_are_case_insensitive():
    # reference_policies_elements_condition.html: "Condition key names are not case-sensitive"
    # Given a role whose condition spells the key AWS:SourceAccount
    role = policy(allow("sns:Publish", "*", Condition={"StringEquals": {"AWS:SourceAccount": ACCOUNT}}))

    # When the request context spells it aws:sourceaccount
    result = evaluate(role, "sns:Publish", "*", {"aws:sourceaccount": ACCOUNT})

    # Then the key is found and the request allowed
    assert result.decision is Decision.ALLOW


def test_arn_like_matches_the_source_arn():
    # reference_policies_elements_condition_operators.html, ARN condition operators: ArnLike
    # Given a role that may pass its SMS role only from a function of this account's us-east-1
    role = policy(
        allow(
            "iam:PassRole",
            f"arn:aws:iam::{ACCOUNT}:role/sms-delivery-status",
            Condition={"ArnLike": {"aws:SourceArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:*"}},
        )
    )
    resource = f"arn:aws:iam::{ACCOUNT}:role/sms-delivery-status"

    # When the source is one of its functions, a function of another account, and no source at all
    ours = evaluate(
        role, "iam:PassRole", resource, {"aws:SourceArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:setup"}
    )
    theirs = evaluate(
        role, "iam:PassRole", resource, {"aws:SourceArn": "arn:aws:lambda:us-east-1:999999999999:function:x"}
    )
    missing = evaluate(role, "iam:PassRole", resource)

    # Then only its own function's request is allowed
    assert ours.decision is Decision.ALLOW
    assert theirs.decision is Decision.IMPLICIT_DENY
    assert missing.decision is Decision.IMPLICIT_DENY


def test_arn_like_checks_each_of_the_six_arn_components_separately():
    # reference_policies_elements_condition_operators.html, ARN condition operators: "Each of the six
    # colon-delimited components of the ARN is checked separately", so * does not span a colon (unlike Resource)
    # Given a condition whose service component is * but which leaves out the region component
    role = policy(
        allow("sns:Publish", "*", Condition={"ArnLike": {"aws:SourceArn": f"arn:aws:*:{ACCOUNT}:function:setup"}})
    )
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:setup"

    # When the source ARN would match the pattern as one string (lambda:us-east-1 for the *)
    result = evaluate(role, "sns:Publish", "*", {"aws:SourceArn": arn})

    # Then it does not match: the account component is compared with "function"
    assert result.decision is Decision.IMPLICIT_DENY
    assert evaluate(policy(allow("sns:Publish", f"arn:aws:*:{ACCOUNT}:function:setup")), "sns:Publish", arn).allowed


def test_arn_not_like_and_string_not_equals_are_true_for_a_missing_key():
    # reference_policies_elements_condition_operators.html: "If the policy condition requires that the key is not
    # matched, such as StringNotLike or ArnNotLike, and the right key is not present, the condition is true."
    # Given a role that denies PassRole unless it is passed to SNS from this account
    role = policy(
        allow("iam:PassRole", "*"),
        {
            "Effect": "Deny",
            "Action": "iam:PassRole",
            "Resource": "*",
            "Condition": {"StringNotEquals": {"iam:PassedToService": "sns.amazonaws.com"}},
        },
        {
            "Effect": "Deny",
            "Action": "iam:PassRole",
            "Resource": "*",
            "Condition": {"ArnNotLike": {"aws:SourceArn": f"arn:aws:*:*:{ACCOUNT}:*"}},
        },
    )
    resource = f"arn:aws:iam::{ACCOUNT}:role/sms"
    good = {
        "iam:PassedToService": "sns.amazonaws.com",
        "aws:SourceArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:f",
    }

    # When it passes the role with both keys as required, without PassedToService, and without SourceArn
    ok = evaluate(role, "iam:PassRole", resource, good)
    no_service = evaluate(role, "iam:PassRole", resource, {"aws:SourceArn": good["aws:SourceArn"]})
    no_source = evaluate(role, "iam:PassRole", resource, {"iam:PassedToService": "sns.amazonaws.com"})

    # Then the complete request is allowed, and a missing key makes the negated condition true: explicit deny
    assert ok.decision is Decision.ALLOW
    assert no_service.decision is Decision.EXPLICIT_DENY
    assert no_source.decision is Decision.EXPLICIT_DENY


@pytest.mark.parametrize(
    ("context", "decision"),
    [
        ({}, Decision.ALLOW),  # key missing: IfExists makes the condition true
        ({"ses:FromAddress": "notifications@example.com"}, Decision.ALLOW),
        ({"ses:FromAddress": "marketing@example.com"}, Decision.IMPLICIT_DENY),  # present: evaluated as StringEquals
    ],
)
def test_if_exists(context, decision):
    # reference_policies_elements_condition_operators.html, ...IfExists condition operators
    # Given a role whose from-address condition applies only if the request carries a from address
    role = policy(
        allow(
            "ses:SendEmail",
            IDENTITY,
            Condition={"StringEqualsIfExists": {"ses:FromAddress": "notifications@example.com"}},
        )
    )

    # When it sends with the context
    result = evaluate(role, "ses:SendEmail", IDENTITY, context)

    # Then the decision is the documented one
    assert result.decision is decision


@pytest.mark.parametrize(
    ("region", "decision"),
    [("us-east-1", Decision.ALLOW), ("eu-west-1", Decision.ALLOW), ("ap-south-1", Decision.IMPLICIT_DENY)],
)
def test_several_values_for_one_key_are_or(region, decision):
    # reference_policies_condition-logic-multiple-context-keys-or-values.html: "If a single condition operator
    # includes multiple values for a context key, those values are evaluated using a logical OR."
    # Given a role allowing two regions
    role = policy(
        allow("sns:Publish", "*", Condition={"StringEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]}})
    )

    # When it publishes in the region
    result = evaluate(role, "sns:Publish", "*", {"aws:RequestedRegion": region})

    # Then the decision is the documented one
    assert result.decision is decision


@pytest.mark.parametrize(
    ("region", "decision"),
    [("us-east-1", Decision.ALLOW), ("eu-west-1", Decision.ALLOW), ("ap-south-1", Decision.EXPLICIT_DENY)],
)
def test_several_values_for_one_key_of_a_negated_operator_are_nor(region, decision):
    # reference_policies_condition-logic-multiple-context-keys-or-values.html: "If a single negated matching condition
    # operator includes multiple values for a context key, those values are evaluated using a logical NOR."
    # Given a role denying every region but two
    role = policy(
        allow("sns:Publish", "*"),
        {
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]}},
        },
    )

    # When it publishes in the region
    result = evaluate(role, "sns:Publish", "*", {"aws:RequestedRegion": region})

    # Then the decision is the documented one
    assert result.decision is decision


@pytest.mark.parametrize(
    ("context", "decision"),
    [
        (
            {
                "aws:SourceAccount": ACCOUNT,
                "aws:SourceArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:t",
                "aws:SecureTransport": "true",
            },
            Decision.ALLOW,
        ),
        (
            {
                "aws:SourceAccount": "999999999999",
                "aws:SourceArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:t",
                "aws:SecureTransport": "true",
            },
            Decision.IMPLICIT_DENY,
        ),
        (
            {
                "aws:SourceAccount": ACCOUNT,
                "aws:SourceArn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:t",
                "aws:SecureTransport": "true",
            },
            Decision.IMPLICIT_DENY,
        ),
        (
            {
                "aws:SourceAccount": ACCOUNT,
                "aws:SourceArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:t",
                "aws:SecureTransport": "false",
            },
            Decision.IMPLICIT_DENY,
        ),
        ({"aws:SourceAccount": ACCOUNT, "aws:SecureTransport": "true"}, Decision.IMPLICIT_DENY),
    ],
)
def test_several_keys_and_several_operators_are_and(context, decision):
    # reference_policies_condition-logic-multiple-context-keys-or-values.html: several condition operators, and
    # several context keys in one operator, are evaluated using a logical AND
    # Given a role whose condition has three operators: StringEquals, ArnLike and Bool
    role = policy(
        allow(
            "logs:PutLogEvents",
            "*",
            Condition={
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "ArnLike": {"aws:SourceArn": f"arn:aws:sns:*:{ACCOUNT}:*"},
                "Bool": {"aws:SecureTransport": True},
            },
        )
    )

    # When it calls with the context
    result = evaluate(role, "logs:PutLogEvents", "*", context)

    # Then every condition must hold
    assert result.decision is decision


@pytest.mark.parametrize(
    ("region", "decision"),
    [("us-east-1", Decision.ALLOW), ("eu-west-1", Decision.IMPLICIT_DENY), (None, Decision.IMPLICIT_DENY)],
)
def test_several_keys_in_one_operator_are_and(region, decision):
    # reference_policies_condition-logic-multiple-context-keys-or-values.html: "If your policy statement has multiple
    # context keys attached to a single condition operator, the context keys are evaluated using a logical AND."
    # Given a role whose StringEquals names two keys
    role = policy(
        allow(
            "logs:CreateLogStream",
            "*",
            Condition={"StringEquals": {"aws:SourceAccount": ACCOUNT, "aws:RequestedRegion": "us-east-1"}},
        )
    )
    context = {"aws:SourceAccount": ACCOUNT} | ({} if region is None else {"aws:RequestedRegion": region})

    # When it calls with the account right and the region as given
    result = evaluate(role, "logs:CreateLogStream", "*", context)

    # Then both keys must match
    assert result.decision is decision


@pytest.mark.parametrize(
    ("tag_keys", "decision"),
    [
        (["key1:legal"], Decision.ALLOW),
        (["key1:hr", "key1:personnel"], Decision.ALLOW),
        (["key2:audit"], Decision.EXPLICIT_DENY),
        (["key1:hr", "key2:audit"], Decision.ALLOW),  # not every value is unlike key1*
        (None, Decision.EXPLICIT_DENY),  # ForAllValues is true when the key is missing
    ],
)
def test_for_all_values_with_a_negated_operator(tag_keys, decision):
    # reference_policies_condition_examples-multi-valued-context-keys.html, "Deny policy with condition set operator
    # ForAllValues" (its table), and reference_policies_condition-single-vs-multi-valued-context-keys.html
    # Given a role allowing IAM tagging but denying it when every tag key is unlike key1*
    role = policy(
        allow("iam:*"),
        {
            "Sid": "DenyRestrictedTags",
            "Effect": "Deny",
            "Action": ["iam:Tag*", "iam:UnTag*"],
            "Resource": ["*"],
            "Condition": {"ForAllValues:StringNotLike": {"aws:TagKeys": "key1*"}},
        },
    )

    # When it tags with the keys
    result = evaluate(
        role, "iam:TagRole", f"arn:aws:iam::{ACCOUNT}:role/r", {} if tag_keys is None else {"aws:TagKeys": tag_keys}
    )

    # Then the decision is the documented one
    assert result.decision is decision


@pytest.mark.parametrize(
    ("tag_keys", "decision"),
    [(["team", "cost"], Decision.ALLOW), (["cost"], Decision.IMPLICIT_DENY), (None, Decision.IMPLICIT_DENY)],
)
def test_for_any_value(tag_keys, decision):
    # reference_policies_condition-single-vs-multi-valued-context-keys.html, ForAnyValue: true if at least one
    # request value matches; false when the key is missing
    # Given a role that may tag only when one of the tag keys is "team"
    role = policy(allow("sqs:TagQueue", "*", Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": "team"}}))

    # When it tags with the keys
    result = evaluate(role, "sqs:TagQueue", "*", {} if tag_keys is None else {"aws:TagKeys": tag_keys})

    # Then the decision is the documented one
    assert result.decision is decision


def test_a_multivalued_key_under_a_single_valued_operator_is_refused():
    # reference_policies_condition-single-vs-multi-valued-context-keys.html: "Multivalued context keys require a
    # condition set operator."
    # Given a role with a plain StringEquals on aws:TagKeys
    role = policy(allow("sqs:TagQueue", "*", Condition={"StringEquals": {"aws:TagKeys": "team"}}))

    # When the request carries two tag keys / one tag key
    # Then two cannot be evaluated as AWS would and are refused; one is a single value
    with pytest.raises(PolicyError, match="ForAnyValue"):
        evaluate(role, "sqs:TagQueue", "*", {"aws:TagKeys": ["team", "cost"]})
    assert evaluate(role, "sqs:TagQueue", "*", {"aws:TagKeys": ["team"]}).decision is Decision.ALLOW


@pytest.mark.parametrize(
    ("null", "context", "decision"),
    [
        ("true", {}, Decision.ALLOW),
        ("true", {"aws:TokenIssueTime": "2024-01-01T00:00:00Z"}, Decision.IMPLICIT_DENY),
        ("false", {"aws:TokenIssueTime": "2024-01-01T00:00:00Z"}, Decision.ALLOW),
        ("false", {}, Decision.IMPLICIT_DENY),
    ],
)
def test_null_checks_whether_the_key_is_present(null, context, decision):
    # reference_policies_elements_condition_operators.html, "Condition operator to check existence of condition keys"
    # Given a role whose condition is Null on aws:TokenIssueTime
    role = policy(allow("ec2:DescribeVpcs", "*", Condition={"Null": {"aws:TokenIssueTime": null}}))

    # When the key is or is not in the request
    result = evaluate(role, "ec2:DescribeVpcs", "*", context)

    # Then true means absent, false means present
    assert result.decision is decision


# --- Parsing ----------------------------------------------------------------------------------------------------


def test_a_document_with_one_statement_and_string_elements():
    # reference_policies_grammar.html: Statement is one statement or an array; Action/Resource a string or an array
    # Given a document whose Statement is a mapping and whose elements are strings, with a JSON boolean condition
    document = {
        "Version": "2012-10-17",
        "Statement": {
            "Sid": "Secure",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::bucket/*",
            "Condition": {"Bool": {"aws:SecureTransport": True}},
        },
    }

    # When it is read
    [statement] = statements(document, "ViewerRole/Policy")

    # Then the statement carries tuples and string condition values
    assert statement == Statement(
        source="ViewerRole/Policy",
        sid="Secure",
        effect="Allow",
        actions=("s3:GetObject",),
        resources=("arn:aws:s3:::bucket/*",),
        conditions={"Bool": {"aws:SecureTransport": ("true",)}},
    )
    assert evaluate([statement], "s3:GetObject", "arn:aws:s3:::bucket/k", {"aws:SecureTransport": "true"}).allowed


def statement_with(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"Sid": "S", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"Version": "2012-10-17", "Statement": [statement_with(Effect=None)]}, "missing Effect"),
        ({"Version": "2012-10-17", "Statement": [statement_with(Effect="Permit")]}, "Effect must be"),
        ({"Version": "2012-10-17", "Statement": [statement_with(Effect="allow")]}, "Effect must be"),
        ({"Version": "2012-10-17", "Statement": [statement_with(NotAction="s3:PutObject")]}, "Action and NotAction"),
        ({"Version": "2012-10-17", "Statement": [statement_with(Action=None)]}, "Action and NotAction"),
        ({"Version": "2012-10-17", "Statement": [statement_with(Resource=None)]}, "Resource and NotResource"),
        ({"Version": "2012-10-17", "Statement": [statement_with(NotResource="*")]}, "Resource and NotResource"),
        ({"Version": "2012-10-17", "Statement": [statement_with(Action=[])]}, "non-empty list"),
        ({"Version": "2012-10-17", "Statement": [statement_with(Action=["s3:GetObject", 3])]}, "list of strings"),
        ({"Version": "2012-10-17", "Statement": [statement_with(Action="GetObject")]}, "'service:Action'"),
        ({"Version": "2012-10-17", "Statement": [statement_with(Resource="my-table")]}, "not an ARN"),
        (
            {
                "Version": "2012-10-17",
                "Statement": [statement_with(Condition={"NumericLessThan": {"s3:max-keys": "10"}})],
            },
            "not supported",
        ),
        (
            {
                "Version": "2012-10-17",
                "Statement": [statement_with(Condition={"DateGreaterThan": {"aws:CurrentTime": "2024"}})],
            },
            "not supported",
        ),
        (
            {
                "Version": "2012-10-17",
                "Statement": [statement_with(Condition={"ForSomeValues:StringLike": {"k": "v"}})],
            },
            "set operator",
        ),
        (
            {
                "Version": "2012-10-17",
                "Statement": [statement_with(Condition={"ForAnyValue:StringLikeIfExists": {"k": "v"}})],
            },
            "IfExists",
        ),
        (
            {"Version": "2012-10-17", "Statement": [statement_with(Condition={"Null": {"k": "maybe"}})]},
            "'true' or 'false'",
        ),
        ({"Version": "2012-10-17", "Statement": [statement_with(Condition={"StringEquals": {"k": []}})]}, "no values"),
        (
            {"Version": "2012-10-17", "Statement": [statement_with(Condition={"StringEquals": {"k": {"a": 1}}})]},
            "condition value",
        ),
        ({"Version": "2012-10-17", "Statement": [statement_with(Condition={"StringEquals": "k"})]}, "must map"),
        ({"Version": "2012-10-17", "Statement": [statement_with(Condition=["StringEquals"])]}, "Condition must be"),
        (
            {"Version": "2012-10-17", "Statement": [statement_with(Resource="arn:aws:s3:::home/${aws:username}/*")]},
            "policy variables",
        ),
        (
            {
                "Version": "2012-10-17",
                "Statement": [statement_with(Condition={"StringLike": {"s3:prefix": "${aws:username}/*"}})],
            },
            "policy variables",
        ),
        ({"Version": "2012-10-17", "Statement": [statement_with(Principal={"AWS": "*"})]}, "Principal"),
        ({"Version": "2012-10-17", "Statement": [statement_with(Actions="s3:*")]}, "unknown statement elements"),
        ({"Version": "2012-10-17", "Statement": [statement_with(), statement_with()]}, "not unique"),
        ({"Version": "2012-10-17", "Statement": [statement_with(Sid=7)]}, "Sid"),
        ({"Version": "2012-10-17", "Statement": ["s3:GetObject"]}, "a statement is a mapping"),
        ({"Version": "2012-10-17", "Statement": []}, "non-empty list"),
        ({"Version": "2012-10-17"}, "Statement must be"),
        ({"Version": "2012-10-18", "Statement": [statement_with()]}, "Version must be"),
        ({"Version": "2012-10-17", "Statement": [statement_with()], "Statements": []}, "unknown policy elements"),
    ],
)
def test_malformed_documents_are_refused(document, message):
    # reference_policies_grammar.html and reference_policies_elements.html: Effect is Allow or Deny; Action/NotAction
    # and Resource/NotResource are mutually exclusive and required in identity-based policies, which have no
    # Principal; reference_policies_elements_condition_operators.html for the operators; reference_policies_variables.html
    # Given a malformed (or not supported) policy document
    # When it is read
    # Then a PolicyError (a ValueError) says what is wrong and where
    with pytest.raises(PolicyError, match=message) as raised:
        statements(document, "BadRole/BadPolicy")
    assert isinstance(raised.value, ValueError)
    assert "BadRole/BadPolicy" in str(raised.value)


def test_a_version_less_document_is_read():
    # reference_policies_elements_version.html: "If you do not include a Version element, the value defaults to
    # 2008-10-17"
    # Given a document without Version
    # When it is read
    [statement] = statements({"Statement": statement_with()}, "Old/Policy")

    # Then its statement is evaluated like any other
    assert evaluate([statement], "s3:GetObject", "arn:aws:s3:::b/k").decision is Decision.ALLOW


def test_a_statement_built_by_hand_is_validated_too():
    # reference_policies_elements_notaction.html / _notresource.html: a statement without Action and NotAction (or
    # Resource and NotResource) would otherwise apply to every action (resource)
    # Given statements built directly, without either element
    # When they are created
    # Then they are refused, so evaluate never sees a statement that silently matches everything
    with pytest.raises(PolicyError, match="Action and NotAction"):
        Statement(source="Hand", sid=None, effect="Deny", resources=("*",))
    with pytest.raises(PolicyError, match="Resource and NotResource"):
        Statement(source="Hand", sid=None, effect="Allow", actions=("s3:*",))
    with pytest.raises(PolicyError, match="not supported"):
        Statement(
            source="Hand",
            sid=None,
            effect="Allow",
            actions=("s3:*",),
            resources=("*",),
            conditions={"IpAddress": {"aws:SourceIp": ("10.0.0.0/8",)}},
        )
