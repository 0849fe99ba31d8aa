"""Authorizes every AWS call of this process against an IAM decision, and answers a denied one as AWS does.

A request is allowed only when every authorization it needs is (IAM User Guide, "Policy evaluation logic",
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html); a denied one gets the
service's own denial (``devstack.iam.requests.denial``), which botocore parses, does not retry ("Retries",
https://boto3.amazonaws.com/v1/documentation/api/latest/guide/retries.html) and raises as the ``ClientError`` AWS's
answer would be: the product code is not changed and cannot tell. The guard is three handlers of botocore's event
system ("Events", https://boto3.amazonaws.com/v1/documentation/api/latest/guide/events.html), registered first on
every client created once ``install`` has run: ``before-parameter-build`` keeps the API parameters,
``before-call`` decides once per call, ``before-send`` answers each attempt of a denied call instead of sending it.
botocore still runs the other ``before-send`` handlers and drops their answers, so an in-process ``mock_aws`` acts on
a denied request; the local stack's servers are reached over HTTP, which a denied call never is.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.model import OperationModel

from devstack.iam.requests import Account, Authorization, UnknownOperation, authorizations, denial

__all__ = ["Guard", "on_new_clients"]

logger = logging.getLogger(__name__)

_PARAMS = "devstack.iam.params"  # request-context key: the call's API parameters
_DENIED = "devstack.iam.denied"  # request-context key: (operation model, denied authorization)

_patch_lock = threading.Lock()


class Guard:
    """IAM for the AWS calls of one process, made as ``principal_arn`` in ``account``.

    ``decide(authorization)`` says whether IAM allows one authorization; ``on_call(authorization, allowed)`` hears
    of each one decided (the stack's least-privilege report). Both are called on the thread making the AWS call,
    ``decide`` concurrently from several threads; ``on_call`` calls are serialized by the guard.
    """

    def __init__(
        self,
        principal_arn: str,
        account: Account,
        decide: Callable[[Authorization], bool],
        on_call: Callable[[Authorization, bool], None] | None = None,
    ) -> None:
        self.principal_arn = principal_arn
        self.account = account
        self._decide = decide
        self._on_call = on_call
        self._report_lock = threading.Lock()
        self._installed = False
        self._id = f"devstack-iam-guard-{id(self)}"

    def install(self) -> None:
        """Guard every botocore client created in this process from now on (once; later calls do nothing)."""
        with _patch_lock:
            if self._installed:
                return
            on_new_clients(self.attach)
            self._installed = True

    def attach(self, client: Any) -> None:
        """Guard one client (``install`` does it for every new one); attaching it again changes nothing."""
        events = client.meta.events
        events.register_first("before-parameter-build", _remember_params, unique_id=f"{self._id}-params")
        events.register_first("before-call", self._authorize, unique_id=f"{self._id}-authorize")
        events.register_first("before-send", self._deny, unique_id=f"{self._id}-deny")

    def check(self, model: OperationModel, params: Mapping[str, Any]) -> Authorization | None:
        """Decide one call: the first authorization denied (each is decided and reported), or ``None``."""
        service = model.service_model.service_name
        try:
            needed = authorizations(service, model.name, params, self.account)
        except (UnknownOperation, ValueError) as exc:
            # Not mapped (or not mappable): denied, as nothing may pass unchecked; named by its signing prefix.
            logger.warning("AWS call denied, no IAM mapping: %s", exc)
            unmapped = Authorization(f"{model.service_model.signing_name}:{model.name}", "*")
            self._report(unmapped, allowed=False)
            return unmapped
        denied: Authorization | None = None
        for authorization in needed:
            try:
                allowed = bool(self._decide(authorization))
            except Exception:
                # The evaluator failed: fail closed, loudly.
                logger.exception("IAM decision failed for %s on %s", authorization.action, authorization.resource)
                allowed = False
            self._report(authorization, allowed=allowed)
            if not allowed and denied is None:
                denied = authorization
        return denied

    def _report(self, authorization: Authorization, *, allowed: bool) -> None:
        if self._on_call is None:
            return
        with self._report_lock:
            self._on_call(authorization, allowed)

    def _authorize(self, model: OperationModel, context: dict[str, Any], **_: Any) -> None:
        """``before-call``: decide the call once; a denial is answered in ``before-send``."""
        params = context.pop(_PARAMS, None)
        denied = self.check(model, params if params is not None else {})
        if denied is not None:
            context[_DENIED] = (model, denied)

    def _deny(self, request: Any, **_: Any) -> AWSResponse | None:
        """``before-send``: the service's denial for a denied call, in place of sending it."""
        context = getattr(request, "context", None) or {}
        found = context.get(_DENIED)
        if found is None:
            return None
        model, authorization = found
        return denial(model.service_model, model, self.principal_arn, authorization)


def on_new_clients(attach: Callable[[Any], None]) -> None:
    """Call ``attach(client)`` on every botocore client created in this process from now on."""
    create_client = botocore.session.Session.create_client

    @functools.wraps(create_client)
    def attached_create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
        client = create_client(session, *args, **kwargs)
        attach(client)
        return client

    botocore.session.Session.create_client = attached_create_client  # type: ignore[method-assign,assignment]


def _remember_params(params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
    """``before-parameter-build``: the API parameters, for ``before-call`` (which sees only the serialized ones).
    A reference: handlers after this one may still complete them in place (boto3's DynamoDB resource does)."""
    context[_PARAMS] = params
