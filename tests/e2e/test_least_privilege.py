"""Least privilege both ways: every authorization the functions needed in the e2e and chaos runs was allowed by
their roles in template.yaml, and every statement of every role was needed by one, or says in template.yaml when
it is used (devstack.permissions: each stack records its functions' AWS calls and the broker its Kafka operations).

This module runs after the other e2e tests (tests/e2e/conftest.py), on the shared stack and on what the chaos run
and the restart test kept (``tests.support.access_archive``); it writes the one report of the session,
``<pytest base temp>/access/least-privilege.json``: every (function, action, resource) observed.
"""

from __future__ import annotations

import json
import time

import pytest

from devstack.permissions import Report, explained
from devstack.stack import LocalStack
from devstack.template_config import load_template
from tests.support import access_archive

pytestmark = pytest.mark.e2e


def test_every_call_was_allowed_and_every_statement_was_needed(local_stack: LocalStack, tmp_path_factory):
    # Given what this session's stacks recorded: the shared e2e stack (live) and every stack that has stopped
    stack = local_stack
    assert stack.permissions is not None and stack.broker is not None, "the e2e stack enforces the template"
    time.sleep(1.5)  # the function processes write their records every half second
    reports = [Report.collect(stack.permissions.directory, stack.broker.authorizer_logs)]
    reports += [Report.collect(folder) for folder in sorted(access_archive(tmp_path_factory).glob("stack-*"))]
    functions = set(load_template(stack.config.template).functions)

    # Then every function of the template has its role in the report
    assert set(reports[0].roles) == functions
    # And no authorization any function needed was refused by its role
    denied = [call for report in reports for call in report.denied()]
    assert denied == []
    # And each template statement was needed by a recorded call, or template.yaml says when it is used
    used = set().union(*(report.used() for report in reports))
    template_text = stack.config.template.read_text()
    unexplained = [
        f"{function}: {statement.source} {statement.sid}"
        for function, role in reports[0].roles.items()
        for statement in role.template_statements
        if (function, statement.source, statement.sid) not in used and not explained(template_text, statement.sid)
    ]
    access_archive(tmp_path_factory).mkdir(parents=True, exist_ok=True)
    (access_archive(tmp_path_factory) / "least-privilege.json").write_text(
        json.dumps(
            {
                "calls": sorted({(c.function, c.action, c.resource) for report in reports for c in report.calls}),
                "denied": [],
                "unexplained": unexplained,
            },
            indent=1,
        )
    )
    assert unexplained == []
