"""Small encoders for sandbox tests: the PHP-style bracket form of importContacts arguments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def import_form(names: Sequence[str], rows: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    form = [(f"field_names[{j}]", name) for j, name in enumerate(names)]
    for i, row in enumerate(rows):
        form += [(f"data[{i}][{j}]", value) for j, value in enumerate(row)]
    return form


async def import_rows(
    sandbox: Any, names: Sequence[str], rows: Sequence[Sequence[str]], **flags: Any
) -> dict[str, Any]:
    """importContacts; returns the whole envelope."""
    return dict(await sandbox.call("importContacts", import_form(names, rows), **flags))


async def imported(
    sandbox: Any, names: Sequence[str], rows: Sequence[Sequence[str]], **flags: Any
) -> dict[str, Any]:
    """importContacts that must succeed; returns `result`."""
    envelope = await import_rows(sandbox, names, rows, **flags)
    assert "error" not in envelope, envelope
    return dict(envelope["result"])
