"""Streaming the export file: chunks, retry only before the body starts, truncation detected."""

from __future__ import annotations

import asyncio

import pytest

from syncd.api import SelzyClient
from syncd.errors import ProtocolError, TransportError
from tests.fixtures.sandbox import SandboxHandle
from tests.integration.api.conftest import FAST_RETRY

CHUNK = 64 * 1024


async def _export_url(client: SelzyClient, sandbox: SandboxHandle, count: int) -> str:
    list_id = await sandbox.create_list("L")
    await sandbox.seed(list_id=list_id, count=count)
    task = await client.export_contacts(list_id, ["email", "email_status"])
    while task.file_to_download is None:
        await asyncio.sleep(0.02)
        task = await client.get_task_result(task.task_uuid)
    return task.file_to_download


async def _read_all(client: SelzyClient, url: str, **kwargs: float) -> bytes:
    async with client.download(url, **kwargs) as chunks:
        return b"".join([chunk async for chunk in chunks])


async def test_large_file_streams_in_bounded_chunks(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    url = await _export_url(client, sandbox, 20_000)
    sizes: list[int] = []
    lines = 0
    async with client.download(url) as chunks:
        async for chunk in chunks:
            sizes.append(len(chunk))
            lines += chunk.count(b"\n")
    assert lines == 20_001  # header + one line per contact
    assert len(sizes) > 1
    assert max(sizes) <= CHUNK


async def test_truncated_body_is_a_transport_error_and_not_retried(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    url = await _export_url(client, sandbox, 5_000)
    await sandbox.fault(method="download", kind="truncate", times=1)
    received: list[bytes] = []

    async def consume() -> None:
        async with client.download(url) as chunks:
            async for chunk in chunks:
                received.append(chunk)

    with client.counting() as counter, pytest.raises(TransportError, match="after") as caught:
        await consume()
    assert received  # the failure came mid-body, after bytes were handed out
    assert caught.value.method == "download"
    assert counter.by_method == {"download": 1}
    assert len(await sandbox.calls("download")) == 1


@pytest.mark.parametrize("kind", ["drop", "http_status"])
async def test_failure_before_the_body_starts_is_retried(
    client: SelzyClient, sandbox: SandboxHandle, kind: str
) -> None:
    url = await _export_url(client, sandbox, 3)
    await sandbox.fault(method="download", kind=kind, status=503, times=1)
    body = await _read_all(client, url)
    assert body.count(b"\n") == 4
    assert len(await sandbox.calls("download")) == 2


async def test_persistent_5xx_gives_transport_error_with_status(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    url = await _export_url(client, sandbox, 3)
    await sandbox.fault(method="download", kind="http_status", status=502, times=-1)
    with pytest.raises(TransportError) as caught:
        await _read_all(client, url)
    assert caught.value.status == 502
    assert len(await sandbox.calls("download")) == FAST_RETRY.max_attempts


async def test_silence_past_the_read_timeout_is_retried_before_the_body(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    url = await _export_url(client, sandbox, 3)
    await sandbox.fault(method="download", kind="hang", delay=10.0, times=1)
    assert (await _read_all(client, url, read_timeout=0.2)).count(b"\n") == 4
    await sandbox.fault(method="download", kind="hang", delay=10.0, times=-1)
    with pytest.raises(TransportError, match="timed out"):
        await _read_all(client, url, read_timeout=0.2)


async def test_missing_file_is_a_protocol_error_without_the_query_string(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    url = f"{sandbox.root_url}/_sandbox/files/does-not-exist.csv?token=TOPSECRET"
    with pytest.raises(ProtocolError, match="HTTP 404") as caught:
        await _read_all(client, url)
    assert "TOPSECRET" not in str(caught.value)
    assert "does-not-exist.csv" in str(caught.value)
    assert len(await sandbox.calls("download")) == 1


async def test_leaving_the_block_early_releases_the_connection(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    url = await _export_url(client, sandbox, 20_000)
    async with client.download(url) as chunks:
        async for _ in chunks:
            break
    # The client is still usable afterwards (and pytest's filterwarnings=error would flag a leak).
    assert (await _read_all(client, url)).count(b"\n") == 20_001


async def test_unusable_url_is_a_protocol_error_without_retry(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    with client.counting() as counter, pytest.raises(ProtocolError, match="unusable URL"):
        await _read_all(client, "ftp://files.example/export.csv?token=TOPSECRET")
    assert counter.total == 1
