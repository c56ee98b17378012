"""Shared fixtures: a fresh PostgreSQL database per test and an in-process sandbox on a real port."""

pytest_plugins = ["tests.fixtures.database", "tests.fixtures.sandbox"]
