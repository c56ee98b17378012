"""Webhooks, part 1 (selzy-api.md §11.1-§11.4): setHook / listHooks / removeHook, which changes
fire `subscribe` and `unsubscribe`, and the bodies: batched and flat shapes, PHP-style JSON, auth.

Every body is checked by a real receiver on 127.0.0.1; waits poll /_sandbox/deliveries.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.integration.sandbox.receiver import Receiver, auth_is_valid
from tests.integration.sandbox.wire import imported

EVENT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def events_of(raw: bytes) -> list[dict[str, Any]]:
    """The events of a batched body, after checking its envelope."""
    body = json.loads(raw)
    assert set(body) == {"auth", "events_by_user"}
    [user] = body["events_by_user"]
    assert user["login"] == "sandbox"
    return list(user["events"])


async def delivered_events(
    sandbox: SandboxHandle, receiver: Receiver, count: int = 1
) -> list[dict[str, Any]]:
    """Wait for `count` POSTs; every one must be 200 and carry a valid auth; their events."""
    made = await sandbox.wait_for_deliveries(count)
    assert [d["status"] for d in made] == [200] * len(made)
    out: list[dict[str, Any]] = []
    for raw in receiver.bodies():
        assert auth_is_valid(raw, sandbox.api_key)
        out += events_of(raw)
    return out


async def active_member(sandbox: SandboxHandle, email: str, *lists: int, **extra: Any) -> None:
    await sandbox.upsert_contacts(
        [{"email": email, "email_status": "active", "email_list_ids": list(lists), **extra}]
    )


# ---- setHook / listHooks / removeHook -------------------------------------------------------


async def test_set_hook_answers_the_handler_and_list_hooks_shows_it(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    url = hook_receiver.url()
    envelope = await hooked.set_hook(url, {"unsubscribe": "*", "subscribe": "1"})
    expected = {
        "hook_url": url,
        "events": {"unsubscribe": "*", "subscribe": "1"},
        "event_format": "json_post",
        "single_event": 0,
        "max_parallel": 5,
        "status": "active",
    }
    assert envelope == {"result": expected}
    assert hook_receiver.gets == 1  # the URL was checked with a GET
    assert await hooked.call("listHooks") == {"result": [expected]}


async def test_set_hook_again_replaces_the_handler_of_that_url(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    url = hook_receiver.url()
    await hooked.set_hook(url, {"unsubscribe": "*"}, event_format="json_post")
    await hooked.set_hook(url, {"unsubscribe": "*"}, event_format="json_post")
    again = await hooked.set_hook(url, {"subscribe": "*"}, single_event=1, max_parallel=2)
    assert again["result"]["events"] == {"subscribe": "*"}
    [hook] = (await hooked.call("listHooks"))["result"]
    assert hook == again["result"]
    assert hook["single_event"] == 1
    assert hook["max_parallel"] == 2


@pytest.mark.parametrize(
    "url",
    ["not a url", "ftp://127.0.0.1/hook", "http://", "/relative/hook", "http://h:99999/x", ""],
)
async def test_set_hook_refuses_an_invalid_url(hooked: SandboxHandle, url: str) -> None:
    envelope = await hooked.set_hook(url)
    assert envelope == {
        "error": "'hook_url' - This value is not a valid URL",
        "code": "invalid_arg",
        "result": "",
    }
    assert await hooked.hooks() == []


@pytest.mark.parametrize("get_status", [404, 500, 204])
async def test_set_hook_refuses_a_url_that_does_not_answer_get_with_200(
    hooked: SandboxHandle, hook_receiver: Receiver, get_status: int
) -> None:
    hook_receiver.get_status = get_status
    envelope = await hooked.set_hook(hook_receiver.url())
    assert envelope["code"] == "invalid_arg"
    assert str(get_status) in envelope["error"]
    assert await hooked.hooks() == []


async def test_set_hook_refuses_an_unreachable_url(hooked: SandboxHandle) -> None:
    envelope = await hooked.set_hook("http://127.0.0.1:9/hook")
    assert envelope["code"] == "invalid_arg"
    assert envelope["error"].startswith("'hook_url' - ")


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"events[nothing]": "*"}, "nothing"),
        ({"events[subscribe]": "first"}, "events[subscribe]"),
        ({"events[unsubscribe]": "*", "event_format": "xml"}, "event_format"),
        ({"events[unsubscribe]": "*", "max_parallel": "0"}, "max_parallel"),
        ({"events[unsubscribe]": "*", "status": "paused"}, "status"),
        ({}, "events"),
    ],
)
async def test_set_hook_checks_its_other_arguments(
    hooked: SandboxHandle, hook_receiver: Receiver, params: dict[str, str], word: str
) -> None:
    envelope = await hooked.call("setHook", params, hook_url=hook_receiver.url())
    assert envelope["code"] == "invalid_arg"
    assert word in envelope["error"]


async def test_remove_hook_forgets_the_handler_and_its_events(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await active_member(hooked, "ann@example.com", 1)
    gone, kept = hook_receiver.url("gone"), hook_receiver.url("kept")
    await hooked.set_hook(gone)
    await hooked.set_hook(kept)
    assert await hooked.call("removeHook", hook_url=gone) == {"result": {}}
    assert [h["hook_url"] for h in (await hooked.call("listHooks"))["result"]] == [kept]
    await hooked.call("unsubscribe", contact_type="email", contact="ann@example.com")
    [delivery] = await hooked.wait_for_deliveries(1)
    assert delivery["hook_url"] == kept
    assert hook_receiver.bodies("gone") == []


async def test_remove_hook_of_an_unknown_url_is_invalid_arg(hooked: SandboxHandle) -> None:
    envelope = await hooked.call("removeHook", hook_url="http://127.0.0.1:9/none")
    assert envelope["code"] == "invalid_arg"


async def test_hooks_are_listed_by_the_admin_api_and_forgotten_by_reset(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await hooked.set_hook(hook_receiver.url())
    assert [h["status"] for h in await hooked.hooks()] == ["active"]
    assert (await hooked.admin("GET", ""))["hooks"] == 1
    await hooked.reset()
    assert await hooked.hooks() == []
    assert (await hooked.call("listHooks"))["result"] == []


# ---- the bodies ------------------------------------------------------------------------------


async def test_unsubscribe_method_sends_a_batched_signed_body(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await hooked.create_list("Offers", 2)
    await active_member(hooked, "ann@example.com", 1, 2)
    await hooked.set_hook(hook_receiver.url())
    unsubscribed = await hooked.call(
        "unsubscribe", contact_type="email", contact="ann@example.com", list_ids="2"
    )
    assert unsubscribed == {"result": {}}
    [event] = await delivered_events(hooked, hook_receiver)
    assert event["event_name"] == "unsubscribe"
    assert EVENT_TIME.match(event["event_time"])
    assert event["event_data"] == {"email": "ann@example.com", "unsubscribed_list_ids": [2]}
    [post] = hook_receiver.posts
    assert post.content_type == "application/json"
    assert post.query == {}  # retry_count only on retries
    assert post.raw.startswith(b'{"auth":"')


async def test_auth_is_the_md5_of_the_body_with_the_api_key_in_its_place(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await active_member(hooked, "ann@example.com", 1)
    await hooked.set_hook(hook_receiver.url())
    await hooked.call("unsubscribe", contact_type="email", contact="ann@example.com")
    await hooked.wait_for_deliveries(1)
    [raw] = hook_receiver.bodies()
    auth = json.loads(raw)["auth"]
    assert re.fullmatch(r"[0-9a-f]{32}", auth)
    keyed = raw.replace(auth.encode(), hooked.api_key.encode())
    assert hashlib.md5(keyed, usedforsecurity=False).hexdigest() == auth
    assert not auth_is_valid(raw, "another-key")
    assert not auth_is_valid(raw.replace(b"ann@", b"bob@"), hooked.api_key)


async def test_single_event_sends_one_flat_body_per_event(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await hooked.upsert_contacts(
        [
            {"email": "ann@example.com", "email_list_ids": [1], "phone": "+15550000001"},
            {"email": "bob@example.com", "email_list_ids": [1]},
        ]
    )
    await hooked.set_hook(hook_receiver.url(), {"unsubscribe": "*"}, single_event=1)
    await imported(
        hooked,
        ["email", "email_unsubscribed_list_ids"],
        [["ann@example.com", "1"], ["bob@example.com", "1"]],
    )
    made = await hooked.wait_for_deliveries(2)
    assert [d["events"] for d in made] == [1, 1]
    bodies = [json.loads(raw) for raw in hook_receiver.bodies()]
    for raw in hook_receiver.bodies():
        assert auth_is_valid(raw, hooked.api_key)
    by_email = {b["email"]: b for b in bodies}
    ann = by_email["ann@example.com"]
    assert list(ann) == [
        "auth",
        "login",
        "event_name",
        "event_time",
        "email",
        "phone",
        "unsubscribed_list_ids",
    ]
    assert ann["login"] == "sandbox"
    assert ann["event_name"] == "unsubscribe"
    assert ann["phone"] == "+15550000001"
    assert ann["unsubscribed_list_ids"] == [1]
    assert "phone" not in by_email["bob@example.com"]


async def test_bodies_are_php_style_json(hooked: SandboxHandle, hook_receiver: Receiver) -> None:
    await hooked.settings(login="Agência/Riga")
    await active_member(hooked, "a/b@example.com", 1)
    await hooked.set_hook(hook_receiver.url(), single_event=1)
    await hooked.call("unsubscribe", contact_type="email", contact="a/b@example.com")
    await hooked.wait_for_deliveries(1)
    [raw] = hook_receiver.bodies()
    assert raw.isascii()
    assert b'"login":"Ag\\u00eancia\\/Riga"' in raw
    assert b'"email":"a\\/b@example.com"' in raw
    assert b'": ' not in raw  # compact
    assert b'", ' not in raw
    assert auth_is_valid(raw, hooked.api_key)
    body = json.loads(raw)
    assert body["login"] == "Agência/Riga"
    reserialised = json.dumps(body, separators=(",", ":")).encode()
    assert not auth_is_valid(reserialised, hooked.api_key)  # why receivers check the raw bytes


async def test_events_of_one_batch_window_travel_in_one_body(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await hooked.settings(hook_batch_delay=1.0)
    await active_member(hooked, "ann@example.com", 1)
    await active_member(hooked, "bob@example.com", 1)
    await hooked.set_hook(hook_receiver.url())
    await hooked.call("unsubscribe", contact_type="email", contact="ann@example.com")
    await hooked.call("unsubscribe", contact_type="email", contact="bob@example.com")
    [delivery] = await hooked.wait_for_deliveries(1)
    assert delivery["events"] == 2
    events = await delivered_events(hooked, hook_receiver)
    assert [e["event_data"]["email"] for e in events] == ["ann@example.com", "bob@example.com"]


# ---- which changes fire ----------------------------------------------------------------------


async def test_subscribe_method_fires_subscribe_with_the_list_ids(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await hooked.create_list("Offers", 2)
    await hooked.set_hook(hook_receiver.url())
    form = {"fields[email]": "new@example.com", "fields[phone]": "+15550000002"}
    subscribed = await hooked.call("subscribe", form, list_ids="1,2", double_optin=3)
    assert "person_id" in subscribed["result"]
    [event] = await delivered_events(hooked, hook_receiver)
    assert event["event_name"] == "subscribe"
    assert event["event_data"] == {
        "email": "new@example.com",
        "phone": "+15550000002",
        "subscribed_list_ids": [1, 2],
    }


async def test_import_contacts_fires_for_each_cause(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await hooked.create_list("Offers", 2)
    for email in ("list@example.com", "status@example.com", "same@example.com"):
        await active_member(hooked, email, 1)
    await hooked.set_hook(hook_receiver.url())
    await imported(
        hooked,
        ["email", "email_status", "email_list_ids", "email_unsubscribed_list_ids"],
        [
            ["list@example.com", "", "", "1"],  # unsubscribed from list 1
            ["status@example.com", "unsubscribed", "", ""],  # the address unsubscribes
            ["joins@example.com", "", "2", ""],  # a new contact subscribes to list 2
            ["same@example.com", "active", "1", ""],  # nothing changes: no event
        ],
    )
    events = await delivered_events(hooked, hook_receiver)
    assert [(e["event_name"], e["event_data"]) for e in events] == [
        ("unsubscribe", {"email": "list@example.com", "unsubscribed_list_ids": [1]}),
        ("unsubscribe", {"email": "status@example.com", "unsubscribed_list_ids": [1]}),
        ("subscribe", {"email": "joins@example.com", "subscribed_list_ids": [2]}),
    ]


async def test_the_admin_upsert_plays_the_person_and_fires(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await hooked.create_list("Offers", 2)
    await active_member(hooked, "ann@example.com", 1)
    await hooked.set_hook(hook_receiver.url())
    await hooked.upsert_contacts(
        [
            {"email": "ann@example.com", "email_unsubscribed_list_ids": [1]},
            {"email": "bob@example.com", "email_list_ids": [2]},
            {"email": "cat@example.com", "email_status": "unsubscribed"},
        ]
    )
    events = await delivered_events(hooked, hook_receiver)
    assert [(e["event_name"], e["event_data"]) for e in events] == [
        ("unsubscribe", {"email": "ann@example.com", "unsubscribed_list_ids": [1]}),
        ("subscribe", {"email": "bob@example.com", "subscribed_list_ids": [2]}),
        ("unsubscribe", {"email": "cat@example.com", "unsubscribed_list_ids": []}),
    ]


async def test_exclude_delete_and_unchanged_contacts_fire_nothing(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    for email in ("ex@example.com", "del@example.com", "same@example.com", "last@example.com"):
        await active_member(hooked, email, 1)
    await hooked.set_hook(hook_receiver.url(), single_event=1, max_parallel=1)
    await hooked.call("exclude", contact_type="email", contact="ex@example.com")
    await imported(hooked, ["email", "delete"], [["del@example.com", "1"]])
    await hooked.upsert_contacts([{"email": "same@example.com", "email_list_ids": [1]}])
    await hooked.call("unsubscribe", contact_type="email", contact="last@example.com")
    [delivery] = await hooked.wait_for_deliveries(1)  # the last change is the only event
    assert json.loads(delivery["body"])["email"] == "last@example.com"


async def test_a_list_filter_passes_only_events_of_that_list(
    hooked: SandboxHandle, hook_receiver: Receiver
) -> None:
    await hooked.create_list("Offers", 2)
    await hooked.set_hook(hook_receiver.url(), {"subscribe": "2", "unsubscribe": "2"})
    await hooked.upsert_contacts(  # one call: its events travel in one body
        [
            {"email": "one@example.com", "email_list_ids": [1]},
            {"email": "two@example.com", "email_list_ids": [1, 2]},
            {"email": "all@example.com", "email_status": "unsubscribed"},
        ]
    )
    events = await delivered_events(hooked, hook_receiver)
    assert [(e["event_name"], e["event_data"]["email"]) for e in events] == [
        ("subscribe", "two@example.com"),  # the event keeps every list it touched
        ("unsubscribe", "all@example.com"),  # an address-level unsubscribe passes every filter
    ]
    assert events[0]["event_data"]["subscribed_list_ids"] == [1, 2]
