"""async/exportContacts + getTaskResult + the CSV download (selzy-api.md §4), and notify_url."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.fixtures.sandbox import SandboxHandle


async def start_export(sandbox: SandboxHandle, fields: list[str], **params: Any) -> str:
    form = [("field_names[]", name) for name in fields]
    envelope = await sandbox.call("async/exportContacts", form, **params)
    assert set(envelope["result"]) == {"task_uuid", "status"}, envelope
    assert envelope["result"]["status"] == "new"
    return str(envelope["result"]["task_uuid"])


async def wait_for_file(sandbox: SandboxHandle, task_uuid: str) -> str:
    for _ in range(200):
        result = (await sandbox.call("async/getTaskResult", task_uuid=task_uuid))["result"]
        if result["status"] == "completed":
            return str(result["file_to_download"])
        assert result["status"] == "processing"
        await asyncio.sleep(0.02)
    raise AssertionError("export did not complete")


async def fetch(sandbox: SandboxHandle, url: str) -> bytes:
    async with sandbox.session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        return await response.read()


async def export_text(sandbox: SandboxHandle, fields: list[str], **params: Any) -> str:
    url = await wait_for_file(sandbox, await start_export(sandbox, fields, **params))
    return (await fetch(sandbox, url)).decode("utf-8")


async def test_task_goes_new_processing_completed(sandbox: SandboxHandle) -> None:
    await sandbox.settings(export_delay=0.3)
    task_uuid = await start_export(sandbox, ["email"])
    polled = (await sandbox.call("async/getTaskResult", task_uuid=task_uuid))["result"]
    assert polled == {"task_uuid": task_uuid, "task_type": "exportContacts", "status": "processing"}
    url = await wait_for_file(sandbox, task_uuid)
    assert url.startswith(f"{sandbox.root_url}/_sandbox/files/")
    assert url.endswith(".csv")


async def test_unknown_task_is_invalid_arg(sandbox: SandboxHandle) -> None:
    envelope = await sandbox.call("async/getTaskResult", task_uuid="nope")
    assert envelope["code"] == "invalid_arg"


async def test_unknown_export_field_is_invalid_arg(sandbox: SandboxHandle) -> None:
    envelope = await sandbox.call("async/exportContacts", {"field_names[]": "Shoe"})
    assert envelope["code"] == "invalid_arg"
    assert "Shoe" in envelope["error"]


async def test_csv_header_order_quoting_and_encoding(sandbox: SandboxHandle) -> None:
    list_id = await sandbox.create_list("A")
    await sandbox.upsert_contacts(
        [
            {"email": "a@example.com", "email_status": "active", "email_list_ids": [list_id],
             "fields": {"Name": 'Ann "the, first"', "City": "Rīga\nold town"}},
            {"email": "b@example.com", "email_list_ids": [list_id],
             "fields": {"Name": "Bob Smith", "City": "cr\rlf"}},
        ]
    )  # fmt: skip
    raw = await export_text(sandbox, ["Name", "email", "City", "email_status"], list_id=list_id)
    assert not raw.startswith("\ufeff")
    assert raw.endswith("\n")
    assert "\r\n" not in raw
    assert raw.splitlines()[0] == "Name,email,City,email_status"
    assert raw == (
        "Name,email,City,email_status\n"
        '"Ann ""the, first""",a@example.com,"Rīga\nold town",active\n'
        '"Bob Smith",b@example.com,"cr\rlf",new\n'  # a space is quoted too (§4.4)
    )


async def test_values_with_spaces_are_quoted_so_dates_arrive_quoted(
    sandbox: SandboxHandle,
) -> None:
    """§4.4: quote a value holding a comma, quote, space or newline; nothing else."""
    list_id = await sandbox.create_list("A")
    await sandbox.upsert_contacts(
        [{"email": "a@example.com", "email_list_ids": [list_id], "fields": {"Note": "tab\there"}}]
    )
    raw = await export_text(
        sandbox, ["email", "email_add_time", "email_list_ids", "Note"], list_id=list_id
    )
    header, line = raw.splitlines()
    assert header == "email,email_add_time,email_list_ids,Note"
    email, added, lists, note = line.split(",")
    assert email == "a@example.com"
    assert re.fullmatch(r'"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"', added)
    assert lists == str(list_id)
    assert note == '"tab\there"'
    [row] = list(csv.DictReader(io.StringIO(raw)))
    assert row["email_add_time"] == added.strip('"')


async def test_list_filter_includes_phone_members_and_unsubscribed(sandbox: SandboxHandle) -> None:
    a, b = await sandbox.create_list("A"), await sandbox.create_list("B")
    await sandbox.upsert_contacts(
        [
            {"email": "in@example.com", "email_list_ids": [a, b]},
            {
                "email": "unsub@example.com",
                "email_list_ids": [b],
                "email_unsubscribed_list_ids": [a],
            },
            {"email": "phone-only@example.com", "phone": "+15550000001", "phone_list_ids": [a]},
            {"email": "other@example.com", "email_list_ids": [b]},
        ]
    )
    fields = ["email", "email_list_ids", "email_unsubscribed_list_ids", "phone", "phone_list_ids"]
    rows = list(csv.DictReader(io.StringIO(await export_text(sandbox, fields, list_id=a))))
    by_email = {row["email"]: row for row in rows}
    assert set(by_email) == {"in@example.com", "unsub@example.com", "phone-only@example.com"}
    assert by_email["in@example.com"]["email_list_ids"] == f"{a},{b}"
    assert by_email["unsub@example.com"]["email_list_ids"] == f"{b}"
    assert by_email["unsub@example.com"]["email_unsubscribed_list_ids"] == f"{a}"
    assert by_email["phone-only@example.com"]["phone_list_ids"] == f"{a}"
    assert by_email["phone-only@example.com"]["email_list_ids"] == ""


async def test_filters_by_status_email_and_tag(sandbox: SandboxHandle) -> None:
    await sandbox.upsert_contacts(
        [
            {"email": "a@example.com", "email_status": "active", "tags": ["vip"]},
            {"email": "b@example.com", "email_status": "unsubscribed"},
        ]
    )
    assert await export_text(sandbox, ["email"], email_status="unsubscribed") == (
        "email\nb@example.com\n"
    )
    assert await export_text(sandbox, ["email"], tag="vip") == "email\na@example.com\n"
    assert await export_text(sandbox, ["email"], email="B@example.com") == "email\nb@example.com\n"


async def test_no_field_names_exports_every_field(sandbox: SandboxHandle) -> None:
    await sandbox.create_field("Name")
    await sandbox.upsert_contacts([{"email": "a@example.com"}])
    header = (await export_text(sandbox, [])).splitlines()[0].split(",")
    assert header[:3] == ["id", "email", "email_status"]
    assert "tags" in header
    assert header[-1] == "Name"


async def test_file_is_a_snapshot_of_the_moment_of_the_call(sandbox: SandboxHandle) -> None:
    await sandbox.upsert_contacts([{"email": "a@example.com"}])
    task_uuid = await start_export(sandbox, ["email"])
    await sandbox.upsert_contacts([{"email": "later@example.com"}])
    url = await wait_for_file(sandbox, task_uuid)
    assert await fetch(sandbox, url) == b"email\na@example.com\n"


async def test_file_expires_after_file_ttl(sandbox: SandboxHandle) -> None:
    # long enough for the poll and the first download to fit in it on a loaded machine
    await sandbox.settings(file_ttl=1.0)
    url = await wait_for_file(sandbox, await start_export(sandbox, ["email"]))
    assert await fetch(sandbox, url) == b"email\n"
    await asyncio.sleep(1.1)  # however late the download was, the TTL has run out since
    async with sandbox.session.get(url) as response:
        assert response.status == 404


async def test_seeded_export_streams_with_content_length(sandbox: SandboxHandle) -> None:
    await sandbox.seed(list_id=7, count=12_000, fields={"Name": "User {i}"})
    url = await wait_for_file(sandbox, await start_export(sandbox, ["email", "Name"], list_id=7))
    async with sandbox.session.get(url) as response:
        body = await response.read()
        assert int(response.headers["Content-Length"]) == len(body)
    lines = body.decode().splitlines()
    assert len(lines) == 12_001
    assert lines[12_000] == 'user11999@example.com,"User 11999"'


class Receiver:
    """A tiny HTTP server standing in for the daemon's callback endpoint."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses  # answers in order; the last repeats
        self.bodies: list[dict[str, Any]] = []
        self.event = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        status = self.statuses[min(len(self.bodies), len(self.statuses)) - 1]
        if 200 <= status < 300:
            self.event.set()
        return web.Response(status=status)


@pytest.fixture
async def receiver(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Receiver, str]]:
    statuses = getattr(request, "param", [200])
    recv = Receiver(statuses)
    app = web.Application()
    app.router.add_post("/hook", recv.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield recv, f"http://{host}:{port}/hook"
    finally:
        await runner.cleanup()


async def test_notify_url_gets_the_completed_result(
    sandbox: SandboxHandle, receiver: tuple[Receiver, str]
) -> None:
    recv, url = receiver
    task_uuid = await start_export(sandbox, ["email"], notify_url=url)
    await asyncio.wait_for(recv.event.wait(), 5)
    [body] = recv.bodies
    result = body["result"]
    assert result["task_uuid"] == task_uuid
    assert result["status"] == "completed"
    assert result["task_type"] == "exportContacts"
    assert await fetch(sandbox, result["file_to_download"]) == b"email\n"
    [call] = await sandbox.calls("notify_url")
    assert call["params"]["status"] == 200
    assert call["params"]["attempt"] == 1


@pytest.mark.parametrize("receiver", [[500, 503, 200]], indirect=True)
async def test_notify_url_is_retried_after_failures(
    sandbox: SandboxHandle, receiver: tuple[Receiver, str]
) -> None:
    recv, url = receiver
    await start_export(sandbox, ["email"], notify_url=url)
    await asyncio.wait_for(recv.event.wait(), 5)
    attempts = [c["params"]["status"] for c in await sandbox.calls("notify_url")]
    assert attempts == [500, 503, 200]


async def test_notify_url_gives_up_after_callback_retries(sandbox: SandboxHandle) -> None:
    await sandbox.settings(callback_retries=1)
    await start_export(sandbox, ["email"], notify_url="http://127.0.0.1:9/unreachable")
    for _ in range(100):
        calls = await sandbox.calls("notify_url")
        if len(calls) == 2:
            break
        await asyncio.sleep(0.05)
    assert [c["params"]["attempt"] for c in calls] == [1, 2]
    assert all("error" in c["params"] for c in calls)
