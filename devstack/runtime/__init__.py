"""Packaged functions under AWS's Runtime Interface Emulator with ``awslambdaric``, as Lambda runs them.

``package`` builds what ``sam build`` would (task roots, layers from their own Makefiles) for this machine,
``toolchain`` provides the runtime's Python, the emulator and the runtime client, ``emulator`` runs one function
and invokes it. Command line: ``python -m devstack.runtime`` (build, invoke).
"""
