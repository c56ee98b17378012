"""Webhook handlers (§11.1): setHook's argument checks, the registry keyed by hook_url and which
events a handler wants. No I/O: the URL's GET check and the POSTs live in delivery.py.

Handlers live in memory, like export tasks: a restart or /_sandbox/reset forgets them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from syncd.sandbox.envelope import invalid_arg
from syncd.sandbox.events import ContactEvent
from syncd.sandbox.params import Params, parse_ids

# Every event name §11.2 lists is accepted; only the contact events are ever fired (events.py).
HOOK_EVENTS = ("subscribe", "unsubscribe", "email_status", "campaign_status", "user_info")
EVENT_FORMATS = ("json_post",)
ACTIVE, STOPPED = "active", "stopped"
DEFAULT_MAX_PARALLEL = 5  # Selzy's default is unknown (§11.5); more than one, as expected there
MAX_PARALLEL_LIMIT = 100
INVALID_URL = "'hook_url' - This value is not a valid URL"


@dataclass(frozen=True, slots=True)
class HookSpec:
    """A validated setHook call."""

    url: str
    events: dict[str, str]  # event name -> "*" or "12,34" (a list filter)
    event_format: str
    single_event: bool
    max_parallel: int
    status: str | None  # None: a new handler starts active, an existing one keeps its status


@dataclass(slots=True)
class Hook:
    url: str
    api_key: str  # the key that registered the handler signs its bodies (§11.4)
    events: dict[str, str]
    event_format: str
    single_event: bool
    max_parallel: int
    status: str = ACTIVE
    epoch: int = 0  # bumped when stopped or removed: older pending bodies are then dropped
    in_flight: int = field(default=0, repr=False)  # POSTs under way (delivery.py's counter)

    def wants(self, event: ContactEvent) -> bool:
        """`*` takes every such event; a list filter those touching one of its lists. An
        address-level unsubscribe concerns every list, so it passes every filter."""
        rule = self.events.get(event.name)
        if rule is None:
            return False
        if rule == "*" or event.address_level:
            return True
        return not set(parse_ids(rule, "events")).isdisjoint(event.list_ids)

    def view(self) -> dict[str, Any]:
        """The shape setHook and listHooks answer with (our choice: Selzy's is unknown)."""
        return {
            "hook_url": self.url,
            "events": dict(self.events),
            "event_format": self.event_format,
            "single_event": int(self.single_event),
            "max_parallel": self.max_parallel,
            "status": self.status,
        }


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host (and a valid port), else invalid_arg."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        raise invalid_arg(INVALID_URL) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise invalid_arg(INVALID_URL)
    return url


def _events(params: Params) -> dict[str, str]:
    value = params.tree.get("events")
    if isinstance(value, str | list):  # events=a,b or events[]=a: every list
        rules = dict.fromkeys(params.strings("events"), "*")
    else:
        rules = {
            name.strip(): rule.strip() or "*" for name, rule in params.mapping("events").items()
        }
    if not rules:
        raise invalid_arg("Argument 'events' is required, e.g. events[unsubscribe]=*")
    for name, rule in rules.items():
        if name not in HOOK_EVENTS:
            raise invalid_arg(f"Unknown event {name!r} in events; known: {', '.join(HOOK_EVENTS)}")
        if rule != "*":
            rules[name] = ",".join(str(i) for i in parse_ids(rule, f"events[{name}]"))
    return rules


def parse_spec(params: Params) -> HookSpec:
    """Validate setHook's arguments (the URL's GET check comes after, in delivery.py)."""
    url = check_url(params.text("hook_url", required=True))
    events = _events(params)
    event_format = params.text("event_format").strip() or EVENT_FORMATS[0]
    if event_format not in EVENT_FORMATS:
        raise invalid_arg(f"'event_format' must be one of {', '.join(EVENT_FORMATS)}")
    max_parallel = params.integer("max_parallel", DEFAULT_MAX_PARALLEL) or 0
    if not 1 <= max_parallel <= MAX_PARALLEL_LIMIT:
        raise invalid_arg(f"'max_parallel' must be 1..{MAX_PARALLEL_LIMIT}")
    status = params.text("status").strip() or None
    if status not in (None, ACTIVE, STOPPED):
        raise invalid_arg(f"'status' must be {ACTIVE} or {STOPPED}")
    return HookSpec(url, events, event_format, params.flag("single_event"), max_parallel, status)


class HookBook:
    """The registered handlers in registration order; hook_url is the identity."""

    def __init__(self) -> None:
        self._hooks: dict[str, Hook] = {}

    def set(self, spec: HookSpec, api_key: str) -> Hook:
        """Register, or replace in place (pending bodies of an active handler are kept)."""
        hook = self._hooks.get(spec.url)
        if hook is None:
            hook = Hook(
                spec.url,
                api_key,
                spec.events,
                spec.event_format,
                spec.single_event,
                spec.max_parallel,
            )
            self._hooks[spec.url] = hook
        else:
            hook.api_key = api_key
            hook.events = spec.events
            hook.event_format = spec.event_format
            hook.single_event = spec.single_event
            hook.max_parallel = spec.max_parallel
        if spec.status == STOPPED:
            self.stop(hook)
        elif spec.status == ACTIVE:
            hook.status = ACTIVE
        return hook

    def stop(self, hook: Hook) -> bool:
        """Stop an active handler (its pending bodies are dropped); False if it was not active."""
        if hook.status != ACTIVE:
            return False
        hook.status = STOPPED
        hook.epoch += 1
        return True

    def get(self, url: str) -> Hook | None:
        return self._hooks.get(url)

    def remove(self, url: str) -> Hook | None:
        hook = self._hooks.pop(url.strip(), None)
        if hook is not None:
            hook.epoch += 1
        return hook

    def all(self) -> list[Hook]:
        return list(self._hooks.values())

    def active(self) -> list[Hook]:
        return [h for h in self._hooks.values() if h.status == ACTIVE]

    def clear(self) -> None:
        for hook in self._hooks.values():
            hook.epoch += 1
        self._hooks.clear()
