"""A Selzy-compatible HTTP server for tests and for trying syncd without a Selzy account.

Public interface: SandboxOptions, build_app(options), serve(options). The package imports nothing
from syncd.reconcile or syncd.db; its state lives in SQLite (a temporary file unless state_file).
"""

from syncd.sandbox.app import build_app, serve
from syncd.sandbox.options import SandboxOptions

__all__ = ["SandboxOptions", "build_app", "serve"]
