"""The client's webhook methods and find_contact against the sandbox over HTTP: setHook sends the
events as a map with json_post, listHooks parses the handlers, a stopped one is re-enabled with
status=active, removeHook forgets it; find_contact is None for an unknown address."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from syncd.api import HookInfo, SelzyClient
from syncd.errors import InvalidArgument
from tests.fixtures.sandbox import SandboxHandle


@pytest.fixture
async def hook_url() -> AsyncIterator[str]:
    """A URL that answers GET with 200, as setHook checks."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/hook", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/hook"
    finally:
        await runner.cleanup()


async def test_set_list_reactivate_and_remove_a_hook(
    client: SelzyClient, sandbox: SandboxHandle, hook_url: str
) -> None:
    events = {"unsubscribe": "*", "subscribe": "*"}
    made = await client.set_hook(hook_url, events)
    assert made == HookInfo(hook_url, "active", events)
    [call] = await sandbox.calls("setHook")
    assert call["params"]["event_format"] == "json_post"
    assert "single_event" not in call["params"]
    await client.set_hook(hook_url, events, status="stopped")
    assert [(h.hook_url, h.status, h.active) for h in await client.list_hooks()] == [
        (hook_url, "stopped", False)
    ]
    await client.set_hook(hook_url, events, status="active")
    assert [h.status for h in await client.list_hooks()] == ["active"]
    await client.remove_hook(hook_url)
    assert await client.list_hooks() == []
    with pytest.raises(InvalidArgument):
        await client.remove_hook(hook_url)


async def test_find_contact_is_none_for_an_unknown_address(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    assert await client.find_contact("nobody@example.com") is None
    await sandbox.upsert_contacts([{"email": "ann@example.com"}])
    found = await client.find_contact("ann@example.com")
    assert found is not None
    assert found.email == "ann@example.com"
