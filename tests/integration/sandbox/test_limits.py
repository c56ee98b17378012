"""Sliding-window rate limits per API key: all calls, and async/exportContacts (§8.2)."""

from __future__ import annotations

from tests.fixtures.sandbox import SandboxHandle

LIMIT_CODE = "api_call_limit_exceeded_for_api_key"


async def test_call_limit_rejects_the_call_over_the_limit(sandbox: SandboxHandle) -> None:
    await sandbox.settings(rate_limit_per_minute=3)
    codes = [(await sandbox.call("getLists")).get("code") for _ in range(4)]
    assert codes == [None, None, None, LIMIT_CODE]
    envelope = await sandbox.call("createList", title="A")
    assert envelope["code"] == LIMIT_CODE
    assert envelope["result"] == ""
    assert (await sandbox.admin("GET", "lists"))["lists"] == []  # the refused call did nothing


async def test_invalid_key_calls_do_not_use_up_the_window(sandbox: SandboxHandle) -> None:
    await sandbox.settings(rate_limit_per_minute=1)
    async with sandbox.session.post(sandbox.url("getLists"), data={"api_key": "bad"}) as r:
        assert (await r.json())["code"] == "invalid_api_key"
    assert await sandbox.call("getLists") == {"result": []}


async def test_export_limit_is_separate(sandbox: SandboxHandle) -> None:
    await sandbox.settings(export_rate_limit_per_minute=2)
    codes = [
        (await sandbox.call("async/exportContacts", {"field_names[]": "email"})).get("code")
        for _ in range(3)
    ]
    assert codes == [None, None, LIMIT_CODE]
    assert await sandbox.call("getLists") == {"result": []}


async def test_zero_means_unlimited(sandbox: SandboxHandle) -> None:
    await sandbox.settings(rate_limit_per_minute=0, export_rate_limit_per_minute=0)
    for _ in range(30):
        assert "error" not in await sandbox.call("getLists")


async def test_reset_clears_the_windows(sandbox: SandboxHandle) -> None:
    await sandbox.settings(rate_limit_per_minute=1)
    await sandbox.call("getLists")
    assert (await sandbox.call("getLists"))["code"] == LIMIT_CODE
    await sandbox.reset()
    assert await sandbox.call("getLists") == {"result": []}
