"""The delivery viewer: an optional part of the local stack (``viewer.app``), never deployed.

It imports the stack, never the reverse: ``LocalStack.start_viewer`` loads this package by name and calls
:func:`start`, at start when the config asks for the viewer (``StackConfig.viewer``: on for
``python -m devstack up``, off for the stacks of the tests) or later on a running stack (a test that looks at it).
"""

from __future__ import annotations

from devstack.stack import LocalStack
from viewer.app import DeliveryViewer

__all__ = ["DeliveryViewer", "start"]


def start(stack: LocalStack) -> DeliveryViewer:
    """The viewer of the running ``stack``, serving on 127.0.0.1."""
    return DeliveryViewer.for_stack(stack).start()
