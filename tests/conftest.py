"""Shared fixtures: a fresh PostgreSQL database per test, the sandbox on a real loopback port."""

pytest_plugins = ["tests.fixtures.database", "tests.fixtures.sandbox"]
