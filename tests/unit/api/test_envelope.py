"""Answer interpretation: status + body -> result, or the right error type (errors.py tree)."""

from __future__ import annotations

import json

import pytest

from syncd.api.envelope import Envelope, interpret
from syncd.errors import (
    AuthError,
    InvalidArgument,
    ProtocolError,
    RateLimited,
    RetryLater,
    SelzyError,
    TransportError,
)

KEY = "secret-key-123"


def _json(document: object) -> bytes:
    return json.dumps(document).encode()


def test_success_returns_result_and_warnings() -> None:
    body = _json({"result": {"id": 1}, "warnings": [{"warning": "probably not a phone"}]})
    assert interpret(200, body, method="m") == Envelope({"id": 1}, ("probably not a phone",))


def test_success_with_falsy_result_is_still_success() -> None:
    assert interpret(200, _json({"result": {}}), method="exclude").result == {}
    assert interpret(200, _json({"result": False}), method="isContactInLists").result is False


@pytest.mark.parametrize(
    ("code", "error_type", "retryable"),
    [
        ("retry_later", RetryLater, True),
        ("api_call_limit_exceeded_for_api_key", RateLimited, True),
        ("api_call_limit_exceeded_for_ip", RateLimited, True),
        ("invalid_api_key", AuthError, False),
        ("access_denied", AuthError, False),
        ("invalid_arg", InvalidArgument, False),
        ("unknown_method", SelzyError, False),
        ("unspecified", SelzyError, False),
        ("not_enough_money", SelzyError, False),
        ("something_new", SelzyError, False),
    ],
)
def test_error_envelope_maps_code_to_type(
    code: str, error_type: type[SelzyError], retryable: bool
) -> None:
    body = _json({"error": "It failed", "code": code, "result": ""})
    with pytest.raises(error_type) as caught:
        interpret(200, body, method="importContacts")
    assert type(caught.value) is error_type
    assert caught.value.code == code
    assert caught.value.retryable is retryable
    assert caught.value.method == "importContacts"
    assert "It failed" in str(caught.value)


def test_error_without_code_is_unspecified() -> None:
    with pytest.raises(SelzyError) as caught:
        interpret(200, _json({"error": "Contact not found"}), method="exclude")
    assert caught.value.code == "unspecified"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_a_retryable_transport_error_with_status(status: int) -> None:
    with pytest.raises(TransportError) as caught:
        interpret(status, _json({"error": "x", "code": "invalid_arg"}), method="getLists")
    assert caught.value.status == status
    assert caught.value.retryable


def test_4xx_with_envelope_raises_the_envelopes_error() -> None:
    with pytest.raises(AuthError):
        interpret(403, _json({"error": "bad key", "code": "invalid_api_key"}), method="getLists")


def test_429_without_envelope_is_rate_limited() -> None:
    with pytest.raises(RateLimited):
        interpret(429, b"Too Many Requests", method="getLists")


@pytest.mark.parametrize("status", [301, 400, 404, 413])
def test_other_non_2xx_without_envelope_is_a_protocol_error(status: int) -> None:
    with pytest.raises(ProtocolError, match=f"HTTP {status}"):
        interpret(status, b"<html>nope</html>", method="getLists")


@pytest.mark.parametrize(
    "body",
    [b"<html>proxy</html>", b"", b'{"result": ', b"[1, 2]", b'"text"', b"\xff\xfe\x00garbage"],
)
def test_non_object_2xx_is_a_protocol_error(body: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        interpret(200, body, method="getLists")
    assert not caught.value.retryable


def test_object_without_result_or_error_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="neither result nor error"):
        interpret(200, _json({"warnings": []}), method="getLists")


def test_secrets_are_masked_in_error_and_body_snippets() -> None:
    with pytest.raises(SelzyError) as caught:
        interpret(
            200, _json({"error": f"key {KEY} is wrong", "code": "x"}), method="m", secrets=[KEY]
        )
    assert KEY not in str(caught.value)
    assert "***" in str(caught.value)
    with pytest.raises(ProtocolError) as protocol:
        interpret(200, f"<p>api_key={KEY}</p>".encode(), method="m", secrets=[KEY])
    assert KEY not in str(protocol.value)
    assert KEY not in repr(protocol.value)


def test_long_error_texts_are_bounded() -> None:
    with pytest.raises(SelzyError) as caught:
        interpret(200, _json({"error": "x" * 10_000, "code": "unspecified"}), method="m")
    assert len(str(caught.value)) <= 300
