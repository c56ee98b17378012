"""Event bodies (selzy-api.md §11.3, §11.4): `auth` is checked on the raw bytes exactly as the
spec says, and bodies are parsed tolerantly into the subscribe/unsubscribe events syncd keeps."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from syncd.events.payload import Malformed, Parsed, auth_is_valid, parse_body

KEY = "secret-api-key"
CAPTURED = (
    '{"auth":"%s","events_by_user":[{"login":"acme","events":[{"event_name":"unsubscribe",'
    '"event_time":"2026-11-30 10:38:22","event_data":{"email":"user@example.com",'
    '"unsubscribed_list_ids":[12345]}}]}]}'
)


def sign(template: str, key: str = KEY) -> bytes:
    """The body with its auth computed as §11.4 says: MD5 of the body with the key as auth."""
    auth = hashlib.md5((template % key).encode(), usedforsecurity=False).hexdigest()
    return (template % auth).encode()


def flat(email: str = "ann@example.com", **extra: object) -> str:
    body = {
        "auth": "%s",
        "login": "acme",
        "event_name": "unsubscribe",
        "event_time": "2026-11-30 10:38:22",
        "email": email,
        **extra,
    }
    return json.dumps(body, separators=(",", ":")).replace("/", "\\/")


def parsed(raw: bytes) -> Parsed:
    result = parse_body(raw)
    assert isinstance(result, Parsed), result
    return result


def test_a_body_signed_with_the_key_is_valid() -> None:
    assert auth_is_valid(sign(CAPTURED), KEY)


def test_php_escaped_slashes_are_hashed_as_sent() -> None:
    """Re-serialising would turn `\\/` into `/` and break the hash: the raw bytes count."""
    body = sign(flat(email="a/b@example.com"))
    assert b"a\\/b" in body
    assert auth_is_valid(body, KEY)
    reserialised = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert not auth_is_valid(reserialised, KEY)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda b: b.replace(b"user@", b"other@"), id="changed-body"),
        pytest.param(lambda b: b + b" ", id="appended-byte"),
        pytest.param(lambda b: b.replace(b'"auth":"', b'"auth":"0', 1)[:-1], id="shifted-auth"),
        pytest.param(lambda b: b.replace(b'"auth"', b'"Auth"'), id="no-auth-key"),
    ],
)
def test_a_tampered_body_is_forged(tamper: object) -> None:
    assert callable(tamper)
    assert not auth_is_valid(tamper(sign(CAPTURED)), KEY)


def test_another_key_makes_a_forgery() -> None:
    assert not auth_is_valid(sign(CAPTURED, key="guessed-key"), KEY)


def test_the_auth_value_must_be_32_lowercase_hex_and_occur_once() -> None:
    body = sign(CAPTURED)
    auth = json.loads(body)["auth"].encode()
    assert not auth_is_valid(body.replace(auth, auth.upper()), KEY)
    # the value repeated elsewhere in the body: refused even though the hash would be checked
    twice = body[:-1] + b',"x":"' + auth + b'"}'
    assert not auth_is_valid(twice, KEY)
    # two auth fields
    assert not auth_is_valid(body[:-1] + b',"auth":"' + b"0" * 32 + b'"}', KEY)


def test_a_batched_body_gives_its_events() -> None:
    [event] = parsed(sign(CAPTURED)).events
    assert event.name == "unsubscribe"
    assert event.email == "user@example.com"
    assert event.list_ids == (12345,)
    assert event.time == datetime(2026, 11, 30, 10, 38, 22, tzinfo=UTC)
    assert event.data["login"] == "acme"


def test_the_same_event_has_the_same_digest_batched_or_flat() -> None:
    [batched] = parsed(sign(CAPTURED)).events
    [single] = parsed(sign(flat(email="user@example.com", unsubscribed_list_ids=[12345]))).events
    assert batched.digest == single.digest


def test_duplicates_within_a_body_are_kept_once() -> None:
    event = {
        "event_name": "subscribe",
        "event_time": "2026-01-01 00:00:00",
        "event_data": {"email": "a@example.com", "subscribed_list_ids": [1]},
    }
    body = {"auth": "%s", "events_by_user": [{"login": "acme", "events": [event, event]}]}
    assert len(parsed(sign(json.dumps(body))).events) == 1


def test_other_event_names_and_unknown_fields_are_reported_not_fatal() -> None:
    events = [
        {
            "event_name": "email_status",
            "event_time": "2026-01-01 00:00:00",
            "event_data": {"email": "a@example.com", "status": "ok_delivered"},
        },
        {
            "event_name": "subscribe",
            "event_time": "2026-01-01 00:00:00",
            "retry": 1,
            "event_data": {
                "email": "b@example.com",
                "subscribed_list_ids": ["7"],
                "source": "form",
            },
        },
        {"event_name": "unsubscribe", "event_data": {"phone": "+123"}},
        "not an object",
    ]
    body = {"auth": "%s", "events_by_user": [{"login": "acme", "events": events}], "v": 2}
    result = parsed(sign(json.dumps(body)))
    [kept] = result.events
    assert (kept.email, kept.list_ids) == ("b@example.com", (7,))
    assert result.ignored == {
        "email_status": 1,
        "unsubscribe:<no email>": 1,
        "<not an object>": 1,
    }
    assert result.unknown_fields == {"v", "events[].retry", "event_data.source"}


@pytest.mark.parametrize(
    ("value", "ids"),
    [
        ([1, 2], (1, 2)),
        (["3"], (3,)),
        ("4,5", (4, 5)),
        (6, (6,)),
        ([], ()),
        (None, None),
        ([1, "x"], None),
        (True, None),
        ({"a": 1}, None),
    ],
)
def test_list_ids_are_read_tolerantly(value: object, ids: tuple[int, ...] | None) -> None:
    [event] = parsed(sign(flat(unsubscribed_list_ids=value))).events
    assert event.list_ids == ids


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe not json", "not_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"auth": "x", "events_by_user": {"a": 1}}', "events_by_user_not_a_list"),
        (b'{"auth": "x", "events_by_user": [{"login": "a"}]}', "events_not_a_list"),
        (b'{"auth": "x", "hello": 1}', "no_events"),
    ],
)
def test_bodies_of_no_documented_shape_are_malformed(body: bytes, reason: str) -> None:
    assert parse_body(body) == Malformed(reason)


@pytest.mark.parametrize("event_time", ["2026-11-30T10:38:22Z", "", 1700000000, None])
def test_an_event_time_of_another_shape_is_kept_as_none(event_time: object) -> None:
    [event] = parsed(sign(flat(event_time=event_time))).events
    assert event.time is None
