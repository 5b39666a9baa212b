"""Shared pytest setup: keep this minimal (others append here)."""

pytest_plugins = ["tests.helpers.kernel", "tests.helpers.kernel_bench"]
