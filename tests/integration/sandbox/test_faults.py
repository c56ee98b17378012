"""Every fault kind of /_sandbox/faults, as a plain HTTP client sees it."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.integration.sandbox.test_export import start_export, wait_for_file


async def _get_lists(sandbox: SandboxHandle, limit: float = 5.0) -> aiohttp.ClientResponse:
    response = await sandbox.session.post(
        sandbox.url("getLists"),
        data={"api_key": sandbox.api_key},
        timeout=aiohttp.ClientTimeout(total=limit),
    )
    await response.read()
    return response


async def test_error_fault_answers_the_envelope_once(sandbox: SandboxHandle) -> None:
    await sandbox.fault(method="getLists", kind="error", code="retry_later", message="busy")
    assert await sandbox.call("getLists") == {"error": "busy", "code": "retry_later", "result": ""}
    assert await sandbox.call("getLists") == {"result": []}
    assert await sandbox.faults() == []


async def test_fault_times_counts_down_and_minus_one_lasts(sandbox: SandboxHandle) -> None:
    await sandbox.fault(method="getLists", kind="error", code="retry_later", times=2)
    assert [(await sandbox.call("getLists")).get("code") for _ in range(3)] == [
        "retry_later",
        "retry_later",
        None,
    ]
    await sandbox.fault(method="*", kind="error", code="access_denied", times=-1)
    for method in ("getLists", "getFields", "importContacts"):
        assert (await sandbox.call(method))["code"] == "access_denied"
    await sandbox.clear_faults()
    assert await sandbox.call("getLists") == {"result": []}


async def test_faults_are_matched_by_method_in_order(sandbox: SandboxHandle) -> None:
    await sandbox.fault(method="getFields", kind="error", code="invalid_arg")
    await sandbox.fault(method="*", kind="error", code="retry_later")
    await sandbox.fault(method="*", kind="error", code="unspecified")
    assert (await sandbox.call("getLists"))["code"] == "retry_later"
    assert (await sandbox.call("getFields"))["code"] == "invalid_arg"
    assert (await sandbox.call("getFields"))["code"] == "unspecified"


async def test_faulted_calls_are_still_logged_and_change_nothing(sandbox: SandboxHandle) -> None:
    await sandbox.fault(method="createList", kind="error", code="retry_later")
    await sandbox.call("createList", title="A")
    assert await sandbox.admin("GET", "lists") == {"lists": []}
    [call] = await sandbox.calls("createList")
    assert call["params"]["title"] == "A"
    assert "api_key" not in call["params"]


async def test_http_status_fault_sends_an_html_page(sandbox: SandboxHandle) -> None:
    await sandbox.fault(method="getLists", kind="http_status", status=503)
    response = await _get_lists(sandbox)
    assert response.status == 503
    assert response.content_type == "text/html"


async def test_latency_fault_delays_a_normal_answer(sandbox: SandboxHandle) -> None:
    await sandbox.fault(method="getLists", kind="latency", delay=0.3)
    started = time.monotonic()
    assert await sandbox.call("getLists") == {"result": []}
    assert time.monotonic() - started >= 0.3


async def test_hang_fault_outlasts_the_client_timeout(sandbox: SandboxHandle) -> None:
    fault = await sandbox.fault(method="getLists", kind="hang")
    assert fault["delay"] == 3600.0
    with pytest.raises(asyncio.TimeoutError):
        await _get_lists(sandbox, limit=0.3)
    assert await sandbox.call("getLists") == {"result": []}  # only one call hangs


async def test_hang_with_short_delay_then_answers(sandbox: SandboxHandle) -> None:
    await sandbox.fault(method="getLists", kind="hang", delay=0.2)
    response = await _get_lists(sandbox, limit=2)
    assert response.status == 200


async def test_drop_fault_closes_the_connection(sandbox: SandboxHandle) -> None:
    await sandbox.fault(method="getLists", kind="drop")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await _get_lists(sandbox)
    assert (await _get_lists(sandbox)).status == 200


async def test_bad_json_fault(sandbox: SandboxHandle) -> None:
    await sandbox.fault(method="getLists", kind="bad_json")
    response = await _get_lists(sandbox)
    assert response.status == 200
    assert response.content_type == "application/json"
    with pytest.raises(ValueError, match="Expecting value"):
        await response.json()  # not JSON despite the header


async def test_export_never_finishes(sandbox: SandboxHandle) -> None:
    await sandbox.fault(method="*", kind="export_never_finishes")
    assert await sandbox.call("getLists") == {"result": []}  # not consumed by other methods
    task_uuid = await start_export(sandbox, ["email"])
    await asyncio.sleep(0.3)
    result = (await sandbox.call("async/getTaskResult", task_uuid=task_uuid))["result"]
    assert result["status"] == "processing"
    second = await start_export(sandbox, ["email"])  # the fault was used up
    await wait_for_file(sandbox, second)


async def _file(sandbox: SandboxHandle, rows: int = 2000) -> str:
    await sandbox.seed(list_id=1, count=rows)
    return await wait_for_file(sandbox, await start_export(sandbox, ["email", "email_status"]))


async def test_download_truncate_sends_part_then_aborts(sandbox: SandboxHandle) -> None:
    url = await _file(sandbox)
    await sandbox.fault(method="download", kind="truncate")
    async with sandbox.session.get(url) as response:
        assert response.status == 200
        expected = int(response.headers["Content-Length"])
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    async with sandbox.session.get(url) as response:
        assert len(await response.read()) == expected


async def test_download_garbage_is_an_html_page(sandbox: SandboxHandle) -> None:
    url = await _file(sandbox)
    await sandbox.fault(method="download", kind="garbage")
    async with sandbox.session.get(url) as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert (await response.read()).startswith(b"<html>")


async def test_download_bad_encoding_has_an_invalid_utf8_row(sandbox: SandboxHandle) -> None:
    url = await _file(sandbox, rows=3)
    await sandbox.fault(method="download", kind="bad_encoding")
    async with sandbox.session.get(url) as response:
        body = await response.read()
        assert int(response.headers["Content-Length"]) == len(body)
    lines = body.split(b"\n")
    assert lines[0] == b"email,email_status"
    assert lines[1].count(b",") == 1
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    assert len(lines) == 6  # header, bad row, three contacts, trailing ""


@pytest.mark.parametrize(
    ("kind", "status"), [("http_status", 503), ("error", 200), ("bad_json", 200)]
)
async def test_download_generic_faults(sandbox: SandboxHandle, kind: str, status: int) -> None:
    url = await _file(sandbox, rows=1)
    await sandbox.fault(method="download", kind=kind, status=503)
    async with sandbox.session.get(url) as response:
        assert response.status == status
        assert response.content_type != "text/csv"


async def test_download_drop(sandbox: SandboxHandle) -> None:
    url = await _file(sandbox, rows=1)
    # times=2: aiohttp's client silently repeats an idempotent request once after a disconnect.
    await sandbox.fault(method="download", kind="drop", times=2)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with sandbox.session.get(url) as response:
            await response.read()
    assert len(await sandbox.calls("download")) == 2


@pytest.mark.parametrize(
    "spec",
    [
        {"method": "getLists", "kind": "truncate"},
        {"method": "download", "kind": "export_never_finishes"},
        {"method": "getLists", "kind": "nope"},
        {"method": "getLists", "kind": "error", "times": 0},
        {"method": "getLists", "kind": "latency", "delay": "soon"},
    ],
)
async def test_bad_fault_specs_are_rejected(
    sandbox: SandboxHandle, spec: dict[str, object]
) -> None:
    async with sandbox.session.post(f"{sandbox.root_url}/_sandbox/faults", json=spec) as response:
        assert response.status == 400
        assert "error" in await response.json()
