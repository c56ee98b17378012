"""The /_sandbox admin API, the calls log, persistence across restarts and the CLI process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from syncd.sandbox.state import SANDBOX
from tests.fixtures.sandbox import (
    SandboxHandle,
    free_port,
    sandbox_options,
    start_in_process,
    wait_until_up,
)
from tests.integration.sandbox.test_export import export_text
from tests.integration.sandbox.wire import import_form, imported


async def test_reset_forgets_everything(sandbox: SandboxHandle) -> None:
    await sandbox.create_list("A")
    await sandbox.create_field("Name")
    await sandbox.seed(list_id=1, count=3)
    await sandbox.fault(method="*", kind="error")
    await sandbox.reset()
    assert await sandbox.contacts() == []
    assert await sandbox.admin("GET", "lists") == {"lists": []}
    assert await sandbox.admin("GET", "fields") == {"fields": []}
    assert await sandbox.faults() == []
    assert await sandbox.calls() == []
    assert await sandbox.create_list("B") == 1  # ids start again


async def test_contact_filters(sandbox: SandboxHandle) -> None:
    a = await sandbox.create_list("A")
    await sandbox.seed(list_id=a, count=5)
    await sandbox.upsert_contacts([{"email": "x@example.com", "phone": "+15550000001"}])
    assert len(await sandbox.contacts(list_id=a)) == 5
    assert len(await sandbox.contacts(list_id=a, limit=2)) == 2
    assert [c["email"] for c in await sandbox.contacts(phone="+1 555 000 0001")] == [
        "x@example.com"
    ]
    assert [c["email"] for c in await sandbox.contacts(email="USER3@example.com")] == [
        "user3@example.com"
    ]


async def test_upsert_plays_the_person_who_unsubscribes(sandbox: SandboxHandle) -> None:
    a, b = await sandbox.create_list("A"), await sandbox.create_list("B")
    await sandbox.upsert_contacts(
        [{"email": "x@example.com", "email_status": "active", "email_list_ids": [a, b]}]
    )
    [contact] = await sandbox.upsert_contacts(
        [{"email": "x@example.com", "email_unsubscribed_list_ids": [a]}]
    )
    assert contact["email_list_ids"] == [b]
    assert contact["email_unsubscribed_list_ids"] == [a]
    [blocked] = await sandbox.upsert_contacts(
        [{"email": "x@example.com", "email_status": "blocked"}]
    )
    assert blocked["email_status"] == "blocked"
    assert blocked["email_list_ids"] == [b]


async def test_upsert_rejects_bad_values(sandbox: SandboxHandle) -> None:
    for spec in ({"email": "x@example.com", "email_status": "happy"}, {"fields": {"a": "b"}}):
        async with sandbox.session.post(
            f"{sandbox.root_url}/_sandbox/contacts", json={"contacts": [spec]}
        ) as response:
            assert response.status == 400
    assert await sandbox.contacts() == []


async def test_seed_creates_contacts_in_one_list_with_fields(sandbox: SandboxHandle) -> None:
    result = await sandbox.seed(
        list_id=5, count=3, start=10, fields={"Name": "User {i}"}, email_status="new"
    )
    assert result["inserted"] == 3
    contacts = await sandbox.contacts(list_id=5)
    assert [(c["email"], c["email_status"], c["fields"]) for c in contacts] == [
        (f"user{i}@example.com", "new", {"Name": f"User {i}"}) for i in (10, 11, 12)
    ]
    assert [f["name"] for f in (await sandbox.admin("GET", "fields"))["fields"]] == ["Name"]


async def test_calls_log_records_params_without_key_and_row_counts(sandbox: SandboxHandle) -> None:
    await imported(sandbox, ["email"], [["a@example.com"], ["b@example.com"]])
    await sandbox.call("getLists")
    [call] = await sandbox.calls("importContacts")
    assert call["rows"] == 2
    assert "api_key" not in call["params"]
    assert call["params"]["data"] == [["a@example.com"], ["b@example.com"]]
    assert [c["method"] for c in await sandbox.calls()] == ["importContacts", "getLists"]
    await sandbox.clear_calls()
    assert await sandbox.calls() == []


async def test_settings_reject_unknown_keys(sandbox: SandboxHandle) -> None:
    async with sandbox.session.post(
        f"{sandbox.root_url}/_sandbox/settings", json={"export_delay": "x", "colour": 1}
    ) as response:
        assert response.status == 400
    settings = await sandbox.settings(export_delay=0.5)
    assert settings["export_delay"] == 0.5


async def test_admin_lists_and_fields_errors(sandbox: SandboxHandle) -> None:
    assert await sandbox.create_list("A", list_id=42) == 42
    for path, body in (("lists", {"title": "A"}), ("fields", {"name": "bad name"})):
        async with sandbox.session.post(f"{sandbox.root_url}/_sandbox/{path}", json=body) as r:
            assert r.status == 400


async def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox.sqlite"
    runner, handle = await start_in_process(sandbox_options(state_file=state))
    try:
        list_id = await handle.create_list("Kept")
        await handle.create_field("Name")
        await imported(
            handle, ["email", "Name", "email_list_ids"], [["a@x.org", "Ann", str(list_id)]]
        )
    finally:
        await handle.session.close()
        await runner.cleanup()
    assert state.exists()
    runner, handle = await start_in_process(sandbox_options(state_file=state))
    try:
        [contact] = await handle.contacts(list_id=list_id)
        assert contact["fields"] == {"Name": "Ann"}
        assert (
            await export_text(handle, ["email", "Name"], list_id=list_id)
            == "email,Name\na@x.org,Ann\n"
        )
    finally:
        await handle.session.close()
        await runner.cleanup()
    assert state.exists()


async def test_temporary_database_is_deleted_on_stop() -> None:
    runner, handle = await start_in_process(sandbox_options())
    await handle.session.close()
    path = runner.app[SANDBOX].db.path
    assert path.exists()
    await runner.cleanup()
    assert not path.exists()


async def test_cli_process_serves_the_api(sandbox_process: SandboxHandle) -> None:
    result = await imported(sandbox_process, ["email"], [["a@example.com"]])
    assert result["inserted"] == 1
    assert await export_text(sandbox_process, ["email"]) == "email\na@example.com\n"


async def test_module_entry_point_reads_key_from_environment(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SELZY_API_KEY": "from-env"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncd.sandbox", "--port", str(port), "--state-file",
        str(tmp_path / "s.sqlite"), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    root = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_until_up(session, root, proc)
            async with session.post(
                f"{root}/en/api/importContacts",
                data=[("api_key", "from-env"), *import_form(["email"], [["a@x.org"]])],
            ) as response:
                assert (await response.json())["result"]["inserted"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert (tmp_path / "s.sqlite").exists()
