"""Every client method against the sandbox over real HTTP: typed results, wire format."""

from __future__ import annotations

import asyncio

import pytest

from syncd.api import (
    ContactInfo,
    ContactList,
    FieldInfo,
    ImportLogEntry,
    ListInfo,
    SelzyClient,
    TaskResult,
)
from syncd.errors import InvalidArgument, SelzyError
from tests.fixtures.sandbox import SandboxHandle


async def test_create_and_get_lists(client: SelzyClient) -> None:
    first = await client.create_list("Newsletter")
    second = await client.create_list("Clients")
    assert await client.get_lists() == [ListInfo(first, "Newsletter"), ListInfo(second, "Clients")]


async def test_duplicate_list_title_is_a_selzy_error(client: SelzyClient) -> None:
    await client.create_list("Same")
    with pytest.raises(SelzyError):
        await client.create_list("Same")


async def test_create_and_get_fields(client: SelzyClient) -> None:
    name_id = await client.create_field("Name")
    age_id = await client.create_field("Age", "number")
    fields = await client.get_fields()
    assert FieldInfo(name_id, "Name", "string") in fields
    assert FieldInfo(age_id, "Age", "number") in fields


async def test_import_reports_counts_and_per_row_log(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    list_id = await sandbox.create_list("L")
    await sandbox.create_field("Name", "string")
    await sandbox.upsert_contacts([{"email": "old@example.com", "email_status": "active"}])
    result = await client.import_contacts(
        ["email", "Name", "email_list_ids"],
        [
            ["new@example.com", "Ann", str(list_id)],
            ["old@example.com", "Bob", str(list_id)],
            ["info@example.com", "Role", str(list_id)],
        ],
    )
    assert (result.total, result.inserted, result.updated, result.invalid) == (3, 1, 1, 1)
    assert [entry.index for entry in result.log] == [2]
    assert isinstance(result.log[0], ImportLogEntry)
    stored = await sandbox.contact("new@example.com")
    assert stored is not None
    assert stored["fields"] == {"Name": "Ann"}
    assert stored["email_list_ids"] == [list_id]


async def test_import_sends_indexed_arrays_and_flags_as_1_0(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    await client.import_contacts(
        ["email"], [["a@example.com"]], overwrite_tags=True, overwrite_lists=False
    )
    (call,) = await sandbox.calls("importContacts")
    assert call["params"]["field_names"] == ["email"]
    assert call["params"]["data"] == [["a@example.com"]]
    assert (call["params"]["overwrite_tags"], call["params"]["overwrite_lists"]) == ("1", "0")


async def test_import_of_500_rows_is_one_call(client: SelzyClient, sandbox: SandboxHandle) -> None:
    rows = [[f"user{i}@example.com"] for i in range(500)]
    result = await client.import_contacts(["email"], rows)
    assert result.inserted == 500
    assert [call["rows"] for call in await sandbox.calls("importContacts")] == [500]


@pytest.mark.parametrize(
    ("field_names", "rows", "problem"),
    [
        (["email"], [[f"u{i}@example.com"] for i in range(501)], "at most 500"),
        (["email"], [], "at least one row"),
        ([], [["a@example.com"]], "field names"),
        (["email", "Name"], [["a@example.com", "Ann"], ["b@example.com"]], "row 1"),
    ],
)
async def test_bad_import_is_refused_before_any_request(
    client: SelzyClient,
    sandbox: SandboxHandle,
    field_names: list[str],
    rows: list[list[str]],
    problem: str,
) -> None:
    with client.counting() as counter, pytest.raises(ValueError, match=problem):
        await client.import_contacts(field_names, rows)
    assert counter.total == 0
    assert await sandbox.calls() == []


async def test_import_without_email_or_phone_column_is_invalid_argument(
    client: SelzyClient,
) -> None:
    with pytest.raises(InvalidArgument):
        await client.import_contacts(["Name"], [["Ann"]])


async def test_get_contact(client: SelzyClient, sandbox: SandboxHandle) -> None:
    list_id = await sandbox.create_list("L")
    await sandbox.create_field("City", "string")
    await sandbox.upsert_contacts(
        [
            {
                "email": "ann@example.com",
                "email_status": "active",
                "email_list_ids": [list_id],
                "email_unsubscribed_list_ids": [list_id],
                "fields": {"City": "Riga"},
            }
        ]
    )
    contact = await client.get_contact("ann@example.com")
    assert contact == ContactInfo(
        email="ann@example.com",
        status="active",
        availability="available",
        lists=(ContactList(list_id, "unsubscribed"),),
        fields={"City": "Riga"},
    )


async def test_get_contact_of_unknown_address_is_a_selzy_error(client: SelzyClient) -> None:
    with pytest.raises(SelzyError) as caught:
        await client.get_contact("nobody@example.com")
    assert not caught.value.retryable


async def test_export_poll_and_download(client: SelzyClient, sandbox: SandboxHandle) -> None:
    list_id = await sandbox.create_list("L")
    await sandbox.seed(list_id=list_id, count=3)
    task = await client.export_contacts(list_id, ["email", "email_status"])
    assert task.status == "new"
    assert task.file_to_download is None
    while not task.completed:
        await asyncio.sleep(0.02)
        task = await client.get_task_result(task.task_uuid)
    assert isinstance(task, TaskResult)
    assert task.task_type == "exportContacts"
    assert task.file_to_download is not None
    async with client.download(task.file_to_download) as chunks:
        body = b"".join([chunk async for chunk in chunks])
    assert body.decode().splitlines() == [
        "email,email_status",
        "user0@example.com,active",
        "user1@example.com,active",
        "user2@example.com,active",
    ]


async def test_export_sends_notify_url_only_when_given(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    list_id = await sandbox.create_list("L")
    await client.export_contacts(list_id, ["email"])
    await client.export_contacts(list_id, ["email"], notify_url="http://127.0.0.1:9/cb?t=1")
    first, second = await sandbox.calls("async/exportContacts")
    assert "notify_url" not in first["params"]
    assert second["params"]["notify_url"] == "http://127.0.0.1:9/cb?t=1"
    assert first["params"]["field_names"] == ["email"]
