"""asyncpg's types do not leave syncd/db/: no module outside it imports a name of syncd.db that is
(or contains) an asyncpg type, reconcile/ never borrows a pooled connection itself, and the
signatures a run is built from mention no asyncpg type. (ruff TID251 bans the obvious imports;
this also catches a new asyncpg-typed name exported from syncd.db.)"""

from __future__ import annotations

import ast
import importlib
import inspect
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

import syncd
from syncd.db import RunSession
from syncd.reconcile import RunServices, run_job
from syncd.reconcile.planning import plan_run
from syncd.reconcile.push import Pusher

PACKAGE = Path(syncd.__file__).parent
OUTSIDE_DB = sorted(
    p for p in PACKAGE.rglob("*.py") if PACKAGE / "db" not in p.parents and p.name != "demo.py"
)


def _imports_from_db(path: Path) -> Iterator[tuple[str, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("syncd.db"):
            for alias in node.names:
                yield node.module or "", alias.name


def _mentions_asyncpg(value: object) -> bool:
    if inspect.ismodule(value):
        return value.__name__.startswith("asyncpg")
    if getattr(value, "__module__", "").startswith("asyncpg"):
        return True
    return any(_mentions_asyncpg(arg) for arg in typing.get_args(value))


@pytest.mark.parametrize("path", OUTSIDE_DB, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_outside_db_imports_an_asyncpg_typed_name(path: Path) -> None:
    for module, name in _imports_from_db(path):
        value = getattr(importlib.import_module(module), name)
        assert not _mentions_asyncpg(value), f"{path.name} imports {module}.{name}"


def test_reconcile_never_borrows_a_connection_of_the_pool() -> None:
    for path in sorted((PACKAGE / "reconcile").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "acquire"
            and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "slots")
        ]
        assert calls == [], f"{path.name}:{calls[0].lineno} acquires a connection itself"


@pytest.mark.parametrize(
    "annotated",
    [run_job, plan_run, Pusher.__init__, RunServices],
    ids=["run_job", "plan_run", "Pusher", "RunServices"],
)
def test_what_a_run_is_built_from_is_typed_without_asyncpg(annotated: object) -> None:
    hints = typing.get_type_hints(annotated)
    assert hints
    assert not [name for name, hint in hints.items() if _mentions_asyncpg(hint)]


def test_the_run_session_keeps_its_connection_private() -> None:
    public = [name for name in vars(RunSession) if not name.startswith("_")]
    assert "open" in public
    assert not [name for name in public if "conn" in name]
