"""User-field values against their field's type (selzy-api.md §5.4) in importContacts: a refused
value rejects its row (`invalid_field_value`, counted in `invalid`), never the whole call."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.integration.sandbox.wire import imported


async def _contact(sandbox: SandboxHandle, email: str) -> dict[str, Any]:
    contact = await sandbox.contact(email)
    assert contact is not None, email
    return contact


@pytest.mark.parametrize(
    ("field_type", "value", "accepted"),
    [
        ("number", "42", True),
        ("number", "-3.25", True),
        ("number", "+7", True),
        ("number", "old", False),
        ("number", "4,5", False),
        ("number", "1e5", False),
        ("date", "04.03.2021", True),
        ("date", "04-03-2021", True),
        ("date", "2021.03.04", True),
        ("date", "2021-03-04", True),
        ("date", "2021/03/04", False),
        ("date", "31.02.2021", False),
        ("date", "2021-03-04 10:11:12", False),
        ("date", "yesterday", False),
        ("bool", "1", True),
        ("bool", "0", True),
        ("bool", "yes", True),
        ("bool", "No", True),
        ("bool", "true", False),
        ("bool", "2", False),
        ("string", "old, with commas", True),
        ("text", "two\nlines", True),
    ],
)
async def test_user_field_values_are_checked_against_the_field_type(
    sandbox: SandboxHandle, field_type: str, value: str, accepted: bool
) -> None:
    await sandbox.create_field("Value", field_type)
    result = await imported(
        sandbox, ["email", "Value"], [["x@example.com", value], ["ok@example.com", ""]]
    )
    imported_emails = [c["email"] for c in await sandbox.contacts()]
    if accepted:
        assert result["log"] == []
        assert imported_emails == ["x@example.com", "ok@example.com"]
        assert (await _contact(sandbox, "x@example.com"))["fields"] == {"Value": value}
    else:
        assert result["invalid"] == 1
        [entry] = result["log"]
        assert (entry["index"], entry["code"]) == (0, "invalid_field_value")
        assert "Value" in entry["message"]
        assert imported_emails == ["ok@example.com"]  # an empty cell always fits


async def test_a_delete_row_is_not_refused_for_its_values(sandbox: SandboxHandle) -> None:
    await sandbox.create_field("Age", "number")
    await imported(sandbox, ["email", "Age"], [["x@example.com", "41"]])
    result = await imported(sandbox, ["email", "Age", "delete"], [["x@example.com", "old", "1"]])
    assert (result["deleted"], result["invalid"]) == (1, 0)


async def test_a_refused_value_leaves_the_existing_contact_unchanged(
    sandbox: SandboxHandle,
) -> None:
    await sandbox.create_field("Age", "number")
    await sandbox.create_field("Name")
    await imported(sandbox, ["email", "Age", "Name"], [["x@example.com", "41", "Ann"]])
    result = await imported(sandbox, ["email", "Age", "Name"], [["x@example.com", "old", "Bo"]])
    assert (result["updated"], result["invalid"]) == (0, 1)
    assert (await _contact(sandbox, "x@example.com"))["fields"] == {"Age": "41", "Name": "Ann"}
