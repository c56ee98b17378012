"""Webhooks, part 2 (selzy-api.md §11.5): success is 200 within the timeout, failures are retried
every hook_retry_interval with a growing `retry_count` until hook_retry_window, then the handler
is stopped until setHook status=active; max_parallel; the receiver-side faults (duplicate,
out_of_order, slow); a clean shutdown with retries pending.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.fixtures.sandbox import SandboxHandle, sandbox_options, start_in_process
from tests.integration.sandbox.conftest import FAST_HOOKS
from tests.integration.sandbox.receiver import Receiver, auth_is_valid, running_receiver
from tests.integration.sandbox.wire import imported

WAIT = 10.0  # seconds any condition polled for here may take


async def eventually(check: Any, what: str) -> None:
    """Poll the coroutine function `check` until it returns true, for at most WAIT seconds."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {WAIT}s: {what}")
        await asyncio.sleep(0.02)


async def hook_status(sandbox: SandboxHandle, url: str) -> str:
    [hook] = [h for h in (await sandbox.call("listHooks"))["result"] if h["hook_url"] == url]
    return str(hook["status"])


async def unsubscribe(sandbox: SandboxHandle, email: str) -> None:
    await sandbox.upsert_contacts([{"email": email, "email_unsubscribed_list_ids": [1]}])


def emails(raw: bytes) -> list[str]:
    body = json.loads(raw)
    if "events_by_user" not in body:
        return [str(body["email"])]
    return [e["event_data"]["email"] for e in body["events_by_user"][0]["events"]]


# ---- success, retries, stop ------------------------------------------------------------------


async def test_failures_are_retried_with_a_growing_retry_count(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    hook_receiver.statuses = [500, 503, 200]
    await hooked.set_hook(hook_receiver.url())
    await unsubscribe(hooked, "ann@example.com")
    made = await hooked.wait_for_deliveries(3)
    assert [(d["status"], d["attempt"], d["retry_count"]) for d in made] == [
        (500, 1, 0),
        (503, 2, 1),
        (200, 3, 2),
    ]
    assert [p.query for p in hook_receiver.posts] == [
        {},
        {"retry_count": "1"},
        {"retry_count": "2"},
    ]
    assert len(set(hook_receiver.bodies())) == 1  # the same body each time
    assert made[1]["url"] == f"{hook_receiver.url()}?retry_count=1"
    assert await hook_status(hooked, hook_receiver.url()) == "active"


async def test_only_200_is_success(hooked: SandboxHandle, hook_receiver: Receiver) -> None:
    hook_receiver.statuses = [204, 302, 200]
    await hooked.set_hook(hook_receiver.url())
    await unsubscribe(hooked, "ann@example.com")
    made = await hooked.wait_for_deliveries(3)
    assert [d["status"] for d in made] == [204, 302, 200]


async def test_a_slow_receiver_times_out_and_is_retried(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await hooked.settings(hook_timeout=0.5)
    hook_receiver.delays = [2.0, 0.0]
    await hooked.set_hook(hook_receiver.url())
    await unsubscribe(hooked, "ann@example.com")
    made = await hooked.wait_for_deliveries(2)
    assert made[0]["status"] is None
    assert "Timeout" in made[0]["error"]
    assert made[1]["status"] == 200
    assert made[1]["retry_count"] == 1


async def test_after_the_retry_window_the_hook_is_stopped_and_drops_events(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await hooked.settings(hook_retry_interval=0.05, hook_retry_window=0.5)
    failing, healthy = hook_receiver.url("failing"), hook_receiver.url("healthy")
    hook_receiver.statuses = [500]
    await hooked.set_hook(failing)
    await unsubscribe(hooked, "ann@example.com")
    await eventually(lambda: _is(hooked, failing, "stopped"), "the failing hook is stopped")
    tries = await hooked.deliveries(failing)
    assert len(tries) >= 2
    assert [d["retry_count"] for d in tries] == list(range(len(tries)))
    assert {d["status"] for d in tries} == {500}
    # Later events for the stopped hook are dropped; a healthy hook shows the round happened.
    hook_receiver.statuses = [200]
    await hooked.set_hook(healthy)
    await unsubscribe(hooked, "bob@example.com")
    await hooked.wait_for_deliveries(1, healthy)
    assert len(await hooked.deliveries(failing)) == len(tries)
    assert await hook_status(hooked, failing) == "stopped"


async def _is(sandbox: SandboxHandle, url: str, status: str) -> bool:
    return await hook_status(sandbox, url) == status


async def test_status_active_re_enables_a_stopped_hook(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await hooked.settings(hook_retry_interval=0.05, hook_retry_window=0.1)
    url = hook_receiver.url()
    hook_receiver.statuses = [500]
    await hooked.set_hook(url)
    await unsubscribe(hooked, "lost@example.com")
    await eventually(lambda: _is(hooked, url, "stopped"), "the hook is stopped")
    again = await hooked.set_hook(url)  # without status=active it stays stopped
    assert again["result"]["status"] == "stopped"
    hook_receiver.statuses = [200]
    hook_receiver.posts.clear()
    await hooked.clear_deliveries()
    revived = await hooked.set_hook(url, status="active")
    assert revived["result"]["status"] == "active"
    await unsubscribe(hooked, "new@example.com")
    [delivery] = await hooked.wait_for_deliveries(1)
    assert delivery["status"] == 200
    [raw] = hook_receiver.bodies()
    assert emails(raw) == ["new@example.com"]  # what was dropped while stopped stays dropped


async def test_set_hook_status_stopped_pauses_a_handler(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    paused, other = hook_receiver.url("paused"), hook_receiver.url("other")
    await hooked.set_hook(paused)
    await hooked.set_hook(other)
    assert (await hooked.set_hook(paused, status="stopped"))["result"]["status"] == "stopped"
    await unsubscribe(hooked, "ann@example.com")
    await hooked.wait_for_deliveries(1, other)
    assert await hooked.deliveries(paused) == []


# ---- concurrency -----------------------------------------------------------------------------


async def test_max_parallel_bounds_concurrent_posts(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    hook_receiver.delays = [0.3]
    await hooked.set_hook(hook_receiver.url(), single_event=1, max_parallel=2)
    rows = [[f"u{i}@example.com", "1"] for i in range(6)]
    await imported(hooked, ["email", "email_unsubscribed_list_ids"], rows)
    await hooked.wait_for_deliveries(6)
    assert hook_receiver.max_in_flight == 2


async def test_max_parallel_1_delivers_in_event_order(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await hooked.set_hook(hook_receiver.url(), single_event=1, max_parallel=1)
    rows = [[f"u{i}@example.com", "1"] for i in range(5)]
    await imported(hooked, ["email", "email_unsubscribed_list_ids"], rows)
    await hooked.wait_for_deliveries(5)
    assert hook_receiver.max_in_flight == 1
    assert [emails(raw)[0] for raw in hook_receiver.bodies()] == [r[0] for r in rows]


# ---- faults for the receiver's tests ---------------------------------------------------------


async def test_duplicate_fault_sends_each_body_twice(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await hooked.fault(method="hook", kind="duplicate", times=-1)
    await hooked.set_hook(hook_receiver.url(), max_parallel=1)
    await unsubscribe(hooked, "ann@example.com")
    made = await hooked.wait_for_deliveries(2)
    assert [d["duplicate"] for d in made] == [False, True]
    first, second = hook_receiver.bodies()
    assert first == second
    assert auth_is_valid(second, hooked.api_key)  # a replay verifies: receivers must be idempotent


async def test_out_of_order_fault_reverses_a_round(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await hooked.fault(method="hook", kind="out_of_order")
    flat, batch = hook_receiver.url("flat"), hook_receiver.url("batch")
    await hooked.set_hook(flat, single_event=1, max_parallel=1)
    await hooked.set_hook(batch)
    rows = [[f"u{i}@example.com", "1"] for i in range(3)]
    await imported(hooked, ["email", "email_unsubscribed_list_ids"], rows)
    await hooked.wait_for_deliveries(3, flat)
    await hooked.wait_for_deliveries(1, batch)
    newest_first = [r[0] for r in reversed(rows)]
    assert [emails(raw)[0] for raw in hook_receiver.bodies("flat")] == newest_first
    [raw] = hook_receiver.bodies("batch")
    assert emails(raw) == newest_first
    assert await hooked.faults() == []  # times=1: one round only


async def test_slow_fault_delays_the_post(hooked: SandboxHandle, hook_receiver: Receiver) -> None:
    await hooked.fault(method="hook", kind="slow", delay=0.4)
    await hooked.set_hook(hook_receiver.url())
    started = asyncio.get_running_loop().time()
    await unsubscribe(hooked, "ann@example.com")
    [delivery] = await hooked.wait_for_deliveries(1)
    assert asyncio.get_running_loop().time() - started >= 0.4
    assert delivery["status"] == 200


async def test_hook_faults_are_checked_and_not_matched_by_star(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    async with hooked.session.post(
        f"{hooked.root_url}/_sandbox/faults", json={"method": "hook", "kind": "drop"}
    ) as response:
        assert response.status == 400
    await hooked.set_hook(hook_receiver.url())
    await hooked.fault(method="*", kind="latency", delay=0.0, times=-1)
    await hooked.fault(method="hook", kind="duplicate")
    await unsubscribe(hooked, "ann@example.com")
    made = await hooked.wait_for_deliveries(2)
    assert [d["duplicate"] for d in made] == [False, True]
    assert [f["kind"] for f in await hooked.faults()] == ["latency"]


# ---- settings, log, life cycle ---------------------------------------------------------------


async def test_hook_settings_are_listed_and_changeable(sandbox: SandboxHandle) -> None:
    defaults = await sandbox.admin("GET", "settings")
    assert {k: defaults[k] for k in ("login", *FAST_HOOKS)} == {
        "login": "sandbox",
        "hook_batch_delay": 1.0,
        "hook_timeout": 3.0,
        "hook_retry_interval": 600.0,
        "hook_retry_window": 86400.0,
    }
    changed = await sandbox.settings(login="acme", hook_retry_interval=1)
    assert changed["login"] == "acme"
    assert changed["hook_retry_interval"] == 1.0
    async with sandbox.session.post(
        f"{sandbox.root_url}/_sandbox/settings", json={"login": 5}
    ) as response:
        assert response.status == 400


async def test_deliveries_can_be_filtered_and_cleared(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await hooked.set_hook(hook_receiver.url())
    await unsubscribe(hooked, "ann@example.com")
    [delivery] = await hooked.wait_for_deliveries(1)
    assert set(delivery) >= {"hook_url", "url", "body", "status", "attempt", "retry_count", "at"}
    assert await hooked.deliveries("http://elsewhere.example/") == []
    await hooked.clear_deliveries()
    assert await hooked.deliveries() == []


async def test_shutdown_with_retries_pending_is_prompt_and_leaves_no_task() -> None:
    options = sandbox_options(hook_batch_delay=0.01, hook_retry_interval=3600.0)
    runner, handle = await start_in_process(options)
    async with running_receiver() as receiver:
        try:
            receiver.statuses = [500]
            await handle.create_list("Newsletter", 1)
            await handle.set_hook(receiver.url())
            await unsubscribe(handle, "ann@example.com")
            await handle.wait_for_deliveries(1)  # the retry is now an hour away
        finally:
            await handle.session.close()
            await asyncio.wait_for(runner.cleanup(), timeout=5)
    left = [t for t in asyncio.all_tasks() if t.get_name().startswith("sandbox-hook")]
    assert left == []


async def test_no_events_are_recorded_without_an_active_hook(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await unsubscribe(hooked, "before@example.com")  # no hook yet: nothing queued
    await hooked.set_hook(hook_receiver.url(), single_event=1)
    await unsubscribe(hooked, "after@example.com")
    [delivery] = await hooked.wait_for_deliveries(1)
    assert json.loads(delivery["body"])["email"] == "after@example.com"
