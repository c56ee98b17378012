"""The event URL's secret segment, what listHooks' answer asks for, and the log throttle."""

from __future__ import annotations

import pytest

from syncd.api import HookInfo
from syncd.events.address import event_address, secret_segment
from syncd.events.hooks import HOOK_EVENTS, Verdict, assess
from syncd.events.throttle import LogThrottle

PUBLIC = "https://sync.example.com/selzy-callback/"


def test_the_secret_segment_is_stable_per_key_and_differs_between_keys() -> None:
    assert secret_segment("key-1") == secret_segment("key-1")
    assert secret_segment("key-1") != secret_segment("key-2")
    assert len(secret_segment("key-1")) == 32
    assert "key-1" not in secret_segment("key-1")


def test_the_event_url_sits_below_public_url_and_never_shows_its_secret() -> None:
    address = event_address(PUBLIC + "?ignored=1", "key-1")
    segment = secret_segment("key-1")
    assert address.url == f"https://sync.example.com/selzy-callback/events/{segment}"
    assert address.prefix == "/selzy-callback/events"
    assert address.shown == "https://sync.example.com/selzy-callback/events/<secret>"
    assert segment not in repr(address)


def hook(url: str, status: str = "active", events: dict[str, str] | None = None) -> HookInfo:
    return HookInfo(url, status, HOOK_EVENTS if events is None else events)


@pytest.mark.parametrize(
    ("listed", "verdict"),
    [
        ([], Verdict.MISSING),
        (["ours"], Verdict.OK),
        (["ours:stopped"], Verdict.STOPPED),
        (["ours:paused"], Verdict.UNKNOWN_STATUS),
        (["ours:active:subscribe-only"], Verdict.CHANGED),
        (["other"], Verdict.MISSING),
    ],
)
def test_what_listhooks_asks_for(listed: list[str], verdict: Verdict) -> None:
    address = event_address(PUBLIC, "key-1")
    hooks = []
    for item in listed:
        name, _, rest = item.partition(":")
        status, _, events = rest.partition(":")
        url = address.url if name == "ours" else "https://elsewhere.example.com/hook"
        hooks.append(hook(url, status or "active", {"subscribe": "*"} if events else None))
    assert assess(hooks, address).verdict is verdict


def test_our_handlers_under_an_old_key_are_stale_and_nobody_elses() -> None:
    address = event_address(PUBLIC, "key-new")
    old = event_address(PUBLIC, "key-old")
    listed = [
        hook(address.url),
        hook(old.url),
        hook("https://sync.example.com/selzy-callback/events/short"),
        hook("https://other.example.com/selzy-callback/events/" + "0" * 32),
    ]
    assert assess(listed, address).stale == (old.url,)


def test_the_throttle_allows_one_line_per_kind_per_interval_and_counts_the_rest() -> None:
    now = [0.0]
    throttle = LogThrottle(60.0, clock=lambda: now[0])
    assert throttle.allow("forged") == 0
    assert throttle.allow("forged") is None
    assert throttle.allow("malformed") == 0
    now[0] = 59.0
    assert throttle.allow("forged") is None
    now[0] = 60.0
    assert throttle.allow("forged") == 2
