"""importContacts conformance: result shape, whole-call errors, the status rule, rejections,
per-list state, delete, tags and user fields (selzy-api.md §3, TEAM.md brief)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.integration.sandbox.wire import import_rows, imported


async def _contact(sandbox: SandboxHandle, email: str) -> dict[str, Any]:
    contact = await sandbox.contact(email)
    assert contact is not None, email
    return contact


async def test_result_shape_counts_every_outcome(sandbox: SandboxHandle) -> None:
    await sandbox.upsert_contacts([{"email": "old@example.com", "email_status": "active"}])
    await sandbox.upsert_contacts([{"email": "gone@example.com"}])
    result = await imported(
        sandbox,
        ["email", "delete"],
        [
            ["new@example.com", ""],
            ["OLD@example.com ", "0"],
            ["gone@example.com", "1"],
            ["info@example.com", ""],
        ],
    )
    assert result == {
        "total": 4,
        "inserted": 1,
        "updated": 1,
        "deleted": 1,
        "new_emails": 1,
        "invalid": 1,
        "log": [
            {
                "index": 3,
                "code": "role_address",
                "message": 'Role-based address "info@example.com" is not imported',
            }
        ],
    }
    assert await sandbox.contact("gone@example.com") is None


async def test_500_rows_are_accepted(sandbox: SandboxHandle) -> None:
    rows = [[f"u{i}@example.com"] for i in range(500)]
    result = await imported(sandbox, ["email"], rows)
    assert result["inserted"] == 500


async def test_501_rows_fail_the_whole_call(sandbox: SandboxHandle) -> None:
    rows = [[f"u{i}@example.com"] for i in range(501)]
    envelope = await import_rows(sandbox, ["email"], rows)
    assert envelope["code"] == "invalid_arg"
    assert envelope["result"] == ""
    assert await sandbox.contacts() == []


async def test_field_names_without_email_or_phone_fail(sandbox: SandboxHandle) -> None:
    await sandbox.create_field("Name")
    envelope = await import_rows(sandbox, ["Name"], [["Ann"]])
    assert envelope["code"] == "invalid_arg"
    assert "email or phone" in envelope["error"]


async def test_unknown_user_field_fails_the_whole_call_naming_it(sandbox: SandboxHandle) -> None:
    envelope = await import_rows(sandbox, ["email", "Shoe"], [["a@example.com", "42"]])
    assert envelope["code"] == "invalid_arg"
    assert "Shoe" in envelope["error"]
    assert await sandbox.contacts() == []


async def test_unknown_list_id_fails_the_whole_call(sandbox: SandboxHandle) -> None:
    envelope = await import_rows(sandbox, ["email", "email_list_ids"], [["a@example.com", "999"]])
    assert envelope["code"] == "invalid_arg"
    assert "999" in envelope["error"]


async def test_email_and_phone_of_two_contacts_fail_and_roll_back(sandbox: SandboxHandle) -> None:
    await sandbox.upsert_contacts([{"email": "a@example.com"}, {"phone": "+15550000001"}])
    envelope = await import_rows(
        sandbox,
        ["email", "phone"],
        [["first@example.com", ""], ["a@example.com", "+1 555 000 0001"]],
    )
    assert envelope == {
        "error": "Contacts a@example.com and +15550000001 already exist but owned by"
        " different subscribers",
        "code": "unspecified",
        "result": "",
    }
    assert await sandbox.contact("first@example.com") is None  # nothing of the call was kept


async def test_email_is_normalised_for_identity(sandbox: SandboxHandle) -> None:
    await imported(sandbox, ["email"], [["  Mixed.Case@Example.COM "]])
    result = await imported(sandbox, ["email"], [["mixed.case@example.com"]])
    assert result["updated"] == 1
    assert result["inserted"] == 0
    assert [c["email"] for c in await sandbox.contacts()] == ["mixed.case@example.com"]


@pytest.mark.parametrize(
    ("given", "stored"),
    [("", "new"), ("active", "active"), ("inactive", "inactive"),
     ("unsubscribed", "unsubscribed"), ("new", "new"), ("blocked", "new"), ("invited", "new")],
)  # fmt: skip
async def test_new_email_takes_an_importable_status_or_new(
    sandbox: SandboxHandle, given: str, stored: str
) -> None:
    await imported(sandbox, ["email", "email_status"], [["a@example.com", given]])
    assert (await _contact(sandbox, "a@example.com"))["email_status"] == stored


@pytest.mark.parametrize(
    ("current", "wanted", "after"),
    [
        ("active", "inactive", "inactive"),
        ("active", "unsubscribed", "unsubscribed"),
        ("active", "new", "new"),
        ("inactive", "active", "active"),
        ("inactive", "unsubscribed", "unsubscribed"),
        ("new", "active", "new"),
        ("unsubscribed", "active", "unsubscribed"),
        ("blocked", "active", "blocked"),
        ("invited", "active", "invited"),
        ("activation_requested", "active", "activation_requested"),
        ("active", "blocked", "active"),
    ],
)
async def test_existing_email_status_changes_only_from_active_or_inactive(
    sandbox: SandboxHandle, current: str, wanted: str, after: str
) -> None:
    await sandbox.create_field("Name")
    await sandbox.upsert_contacts([{"email": "a@example.com", "email_status": current}])
    result = await imported(
        sandbox, ["email", "email_status", "Name"], [["a@example.com", wanted, "Ann"]]
    )
    assert result["updated"] == 1
    assert result["log"] == []
    contact = await _contact(sandbox, "a@example.com")
    assert contact["email_status"] == after
    assert contact["fields"] == {"Name": "Ann"}  # the rest of the row is applied either way


async def test_new_phone_is_active_and_normalised(sandbox: SandboxHandle) -> None:
    await imported(sandbox, ["phone"], [["+7 (926) 123-23-23"]])
    [contact] = await sandbox.contacts()
    assert contact["phone"] == "+79261232323"
    assert contact["phone_status"] == "active"


async def test_existing_phone_status_follows_the_same_rule(sandbox: SandboxHandle) -> None:
    await sandbox.upsert_contacts(
        [{"phone": "+15550000001", "phone_status": "unsubscribed"},
         {"phone": "+15550000002", "phone_status": "active"}]
    )  # fmt: skip
    await imported(
        sandbox,
        ["phone", "phone_status"],
        [["+15550000001", "active"], ["15550000002", "inactive"]],
    )
    statuses = {c["phone"]: c["phone_status"] for c in await sandbox.contacts()}
    assert statuses == {"+15550000001": "unsubscribed", "+15550000002": "inactive"}


@pytest.mark.parametrize(
    ("email", "code"),
    [
        ("info@example.com", "role_address"),
        ("Sales@example.com", "role_address"),
        ("no-reply@example.com", "role_address"),
        ("noreply@example.com", "role_address"),
        ("all@example.com", "role_address"),
        ("postmaster@example.com", "role_address"),
        ("abuse@example.com", "role_address"),
        ("webmaster@example.com", "role_address"),
        ("support@example.com", "role_address"),
        ("admin@example.com", "role_address"),
        ("bob@trap.spamtrap", "role_address"),
        ("bob@spamtrap.example", "role_address"),
        ("not-an-email", "invalid_email"),
        ("a@b", "invalid_email"),
        ("two@@example.com", "invalid_email"),
        ("dots..in@example.com", "invalid_email"),
    ],
)
async def test_rejected_addresses_are_logged_and_counted_invalid(
    sandbox: SandboxHandle, email: str, code: str
) -> None:
    result = await imported(sandbox, ["email"], [["ok@example.com"], [email]])
    assert result["inserted"] == 1
    assert result["invalid"] == 1
    [entry] = result["log"]
    assert entry["index"] == 1
    assert entry["code"] == code
    assert entry["message"]
    assert [c["email"] for c in await sandbox.contacts()] == ["ok@example.com"]


@pytest.mark.parametrize("phone", ["12", "+1-800-FLOWERS", "++15550000001", "+1234567890123456"])
async def test_invalid_phone_is_rejected(sandbox: SandboxHandle, phone: str) -> None:
    result = await imported(sandbox, ["phone"], [[phone]])
    assert result["invalid"] == 1
    assert result["log"][0]["code"] == "invalid_phone"
    assert await sandbox.contacts() == []


async def test_email_list_ids_add_memberships(sandbox: SandboxHandle) -> None:
    a, b = await sandbox.create_list("A"), await sandbox.create_list("B")
    await imported(sandbox, ["email", "email_list_ids"], [["x@example.com", f"{a}"]])
    await imported(sandbox, ["email", "email_list_ids"], [["x@example.com", f"{b}"]])
    contact = await _contact(sandbox, "x@example.com")
    assert contact["email_list_ids"] == [a, b]


async def test_list_ids_do_not_clear_a_per_list_unsubscribe(sandbox: SandboxHandle) -> None:
    a = await sandbox.create_list("A")
    await sandbox.upsert_contacts(
        [{"email": "x@example.com", "email_status": "active", "email_unsubscribed_list_ids": [a]}]
    )
    await imported(sandbox, ["email", "email_list_ids"], [["x@example.com", str(a)]])
    contact = await _contact(sandbox, "x@example.com")
    assert contact["email_list_ids"] == []
    assert contact["email_unsubscribed_list_ids"] == [a]


async def test_overwrite_lists_replaces_memberships_and_unsubscribes(
    sandbox: SandboxHandle,
) -> None:
    a, b = await sandbox.create_list("A"), await sandbox.create_list("B")
    await sandbox.upsert_contacts(
        [{"email": "x@example.com", "email_list_ids": [b], "email_unsubscribed_list_ids": [a]}]
    )
    await imported(
        sandbox, ["email", "email_list_ids"], [["x@example.com", str(a)]], overwrite_lists=1
    )
    contact = await _contact(sandbox, "x@example.com")
    assert contact["email_list_ids"] == [a]
    assert contact["email_unsubscribed_list_ids"] == []


async def test_unsubscribed_list_ids_mark_and_add_membership(sandbox: SandboxHandle) -> None:
    a, b = await sandbox.create_list("A"), await sandbox.create_list("B")
    await imported(
        sandbox,
        ["email", "email_list_ids", "email_unsubscribed_list_ids"],
        [["x@example.com", str(a), str(b)]],
    )
    contact = await _contact(sandbox, "x@example.com")
    assert contact["email_list_ids"] == [a]
    assert contact["email_unsubscribed_list_ids"] == [b]
    assert contact["email_status"] == "new"  # per-list state does not touch the address status


async def test_excluded_list_ids_remove_membership_without_mark(sandbox: SandboxHandle) -> None:
    a, b = await sandbox.create_list("A"), await sandbox.create_list("B")
    await sandbox.upsert_contacts([{"email": "x@example.com", "email_list_ids": [a, b]}])
    await imported(sandbox, ["email", "email_excluded_list_ids"], [["x@example.com", str(a)]])
    contact = await _contact(sandbox, "x@example.com")
    assert contact["email_list_ids"] == [b]
    assert contact["email_unsubscribed_list_ids"] == []


async def test_phone_list_columns_work_like_email_ones(sandbox: SandboxHandle) -> None:
    a, b = await sandbox.create_list("A"), await sandbox.create_list("B")
    await imported(
        sandbox,
        ["phone", "phone_list_ids", "phone_unsubscribed_list_ids"],
        [["+15550000001", str(a), str(b)]],
    )
    await imported(sandbox, ["phone", "phone_excluded_list_ids"], [["+15550000001", str(a)]])
    [contact] = await sandbox.contacts()
    assert contact["phone_list_ids"] == []
    assert contact["phone_unsubscribed_list_ids"] == [b]


async def test_delete_of_an_unknown_address_counts_nothing(sandbox: SandboxHandle) -> None:
    result = await imported(sandbox, ["email", "delete"], [["ghost@example.com", "1"]])
    assert result["deleted"] == 0
    assert result["inserted"] == 0


async def test_delete_removes_the_contact_from_the_account(sandbox: SandboxHandle) -> None:
    a = await sandbox.create_list("A")
    await sandbox.upsert_contacts([{"email": "x@example.com", "email_list_ids": [a]}])
    result = await imported(sandbox, ["email", "delete"], [["x@example.com", "1"]])
    assert result["deleted"] == 1
    assert await sandbox.contacts() == []
    assert await sandbox.contacts(list_id=a) == []


async def test_tags_are_added_or_replaced(sandbox: SandboxHandle) -> None:
    await imported(sandbox, ["email", "tags"], [["x@example.com", "a, b"]])
    await imported(sandbox, ["email", "tags"], [["x@example.com", "b,c"]])
    assert (await _contact(sandbox, "x@example.com"))["tags"] == ["a", "b", "c"]
    await imported(sandbox, ["email", "tags"], [["x@example.com", "z"]], overwrite_tags=1)
    assert (await _contact(sandbox, "x@example.com"))["tags"] == ["z"]


async def test_more_than_ten_tags_rejects_the_row_and_counts_it_invalid(
    sandbox: SandboxHandle,
) -> None:
    tags = ",".join(f"t{i}" for i in range(11))
    ten = ",".join(f"t{i}" for i in range(10))
    result = await imported(
        sandbox, ["email", "tags"], [["x@example.com", tags], ["y@example.com", ten]]
    )
    assert result["inserted"] == 1
    assert result["invalid"] == 1
    assert [(e["index"], e["code"]) for e in result["log"]] == [(0, "too_many_tags")]
    assert [c["email"] for c in await sandbox.contacts()] == ["y@example.com"]


async def test_import_without_data_is_invalid_arg(sandbox: SandboxHandle) -> None:
    envelope = await sandbox.call("importContacts", {"field_names[0]": "email"})
    assert envelope["code"] == "invalid_arg"
    assert "data" in envelope["error"]
    assert envelope["result"] == ""


async def test_user_fields_are_set_and_an_empty_cell_clears(sandbox: SandboxHandle) -> None:
    await sandbox.create_field("Name")
    await sandbox.create_field("City")
    await imported(sandbox, ["email", "Name", "City"], [["x@example.com", "Ann", "Riga"]])
    await imported(sandbox, ["email", "City"], [["x@example.com", ""]])
    assert (await _contact(sandbox, "x@example.com"))["fields"] == {"Name": "Ann"}


async def test_new_emails_counts_addresses_that_are_new_after_the_call(
    sandbox: SandboxHandle,
) -> None:
    await sandbox.upsert_contacts(
        [{"email": "was-new@example.com", "email_status": "new"},
         {"email": "active@example.com", "email_status": "active"}]
    )  # fmt: skip
    result = await imported(
        sandbox,
        ["email"],
        [["was-new@example.com"], ["active@example.com"], ["fresh@example.com"]],
    )
    assert result["new_emails"] == 2


async def test_phone_found_contact_gets_the_email(sandbox: SandboxHandle) -> None:
    await sandbox.upsert_contacts([{"phone": "+15550000001"}])
    result = await imported(sandbox, ["email", "phone"], [["x@example.com", "+15550000001"]])
    assert result["updated"] == 1
    [contact] = await sandbox.contacts()
    assert contact["email"] == "x@example.com"
    assert contact["email_status"] == "new"
