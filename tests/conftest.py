"""Shared pytest setup: keep this minimal (others append here)."""

import os

pytest_plugins = ["tests.helpers.kernel", "tests.helpers.kernel_bench"]

# Every StackThread built in a test (and in the processes tests start) makes its stacks assert
# that poll and flush run under its lock (pystack/runner.py).
os.environ["PYSTACK_DEBUG_LOCKS"] = "1"
