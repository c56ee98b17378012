"""Fixtures of the reconciliation integration tests (see harness.py)."""

from tests.integration.reconcile.harness import harness_fixture

__all__ = ["harness_fixture"]
