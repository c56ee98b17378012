"""Faults injected by the sandbox -> the right exception, and the right retry decision, counted
on both sides (the client's counter and the sandbox's calls log)."""

from __future__ import annotations

import time

import pytest
import structlog

from syncd.api import RetryPolicy, SelzyClient
from syncd.errors import (
    AuthError,
    InvalidArgument,
    ProtocolError,
    RateLimited,
    RetryLater,
    SelzyError,
    TransportError,
)
from tests.fixtures.sandbox import SandboxHandle
from tests.integration.api.conftest import FAST_RETRY, MakeClient

HANG = 10.0  # seconds a hanging fault holds its call: far longer than any client timeout here
# A client timeout that a normal answer of the in-process sandbox never reaches, even on a
# loaded machine (only hanging calls may hit it)
PATIENT_TIMEOUT = 2.0

RETRIED_CODES = [
    "retry_later",
    "api_call_limit_exceeded_for_api_key",
    "api_call_limit_exceeded_for_ip",
]
FINAL_CODES = [
    ("invalid_api_key", AuthError),
    ("access_denied", AuthError),
    ("invalid_arg", InvalidArgument),
    ("unknown_method", SelzyError),
    ("unspecified", SelzyError),
    ("not_enough_money", SelzyError),
]


async def _attempts(sandbox: SandboxHandle, method: str = "getLists") -> int:
    return len(await sandbox.calls(method))


@pytest.mark.parametrize("code", RETRIED_CODES)
async def test_retryable_code_once_is_retried_and_succeeds(
    client: SelzyClient, sandbox: SandboxHandle, code: str
) -> None:
    await sandbox.fault(method="getLists", kind="error", code=code, times=1)
    with structlog.testing.capture_logs() as logs, client.counting() as counter:
        assert await client.get_lists() == []
    assert counter.by_method == {"getLists": 2}
    assert counter.errors == {code: 1}
    assert await _attempts(sandbox) == 2
    (retry,) = [e for e in logs if e["event"] == "api_retry"]
    assert retry["log_level"] == "warning"
    assert (retry["method"], retry["attempt"], retry["error_code"]) == ("getLists", 1, code)
    assert retry["delay"] >= 0


@pytest.mark.parametrize(("code", "error_type"), FINAL_CODES)
async def test_final_code_is_raised_without_retry(
    client: SelzyClient, sandbox: SandboxHandle, code: str, error_type: type[SelzyError]
) -> None:
    await sandbox.fault(method="getLists", kind="error", code=code, message="Nope", times=-1)
    with pytest.raises(error_type) as caught, client.counting() as counter:
        await client.get_lists()
    assert counter.errors == {code: 1}  # a final error is counted too
    assert type(caught.value) is error_type
    assert caught.value.code == code
    assert await _attempts(sandbox) == 1


async def test_retry_later_forever_gives_up_after_max_attempts(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    await sandbox.fault(method="getLists", kind="error", code="retry_later", times=-1)
    with pytest.raises(RetryLater):
        await client.get_lists()
    assert await _attempts(sandbox) == FAST_RETRY.max_attempts


async def test_http_503_is_retried_then_raised_as_transport_error_with_status(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    await sandbox.fault(method="getLists", kind="http_status", status=503, times=1)
    assert await client.get_lists() == []
    assert await _attempts(sandbox) == 2
    await sandbox.clear_calls()
    await sandbox.fault(method="getLists", kind="http_status", status=503, times=-1)
    with pytest.raises(TransportError) as caught:
        await client.get_lists()
    assert caught.value.status == 503
    assert await _attempts(sandbox) == FAST_RETRY.max_attempts


async def test_http_404_page_is_a_protocol_error_not_retried(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    await sandbox.fault(method="getLists", kind="http_status", status=404, times=-1)
    with pytest.raises(ProtocolError, match="HTTP 404"):
        await client.get_lists()
    assert await _attempts(sandbox) == 1


async def test_latency_within_the_timeout_succeeds_first_time(
    make_client: MakeClient, sandbox: SandboxHandle
) -> None:
    client = make_client(timeout=0.3 + PATIENT_TIMEOUT)
    await sandbox.fault(method="getLists", kind="latency", delay=0.3, times=1)
    assert await client.get_lists() == []
    assert await _attempts(sandbox) == 1


async def test_hang_past_the_timeout_is_a_transport_error_after_retries(
    make_client: MakeClient, sandbox: SandboxHandle
) -> None:
    client = make_client(timeout=0.2)
    await sandbox.fault(method="getLists", kind="hang", delay=HANG, times=-1)
    started = time.monotonic()
    with pytest.raises(TransportError, match="timed out"):
        await client.get_lists()
    assert time.monotonic() - started < HANG  # every attempt was cut short by the timeout
    assert await _attempts(sandbox) == FAST_RETRY.max_attempts


async def test_hang_once_then_answer_succeeds(
    make_client: MakeClient, sandbox: SandboxHandle
) -> None:
    client = make_client(timeout=PATIENT_TIMEOUT)  # the second attempt must not time out too
    await sandbox.fault(method="getLists", kind="hang", delay=HANG, times=1)
    assert await client.get_lists() == []
    assert await _attempts(sandbox) == 2


async def test_dropped_connection_is_retried(client: SelzyClient, sandbox: SandboxHandle) -> None:
    await sandbox.fault(method="importContacts", kind="drop", times=1)
    result = await client.import_contacts(["email"], [["a@example.com"]])
    assert result.inserted == 1
    assert await _attempts(sandbox, "importContacts") == 2


async def test_dropped_connection_every_time_is_a_transport_error(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    await sandbox.fault(method="getLists", kind="drop", times=-1)
    with pytest.raises(TransportError):
        await client.get_lists()
    assert await _attempts(sandbox) == FAST_RETRY.max_attempts


async def test_bad_json_is_a_protocol_error_not_retried(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    await sandbox.fault(method="getLists", kind="bad_json", times=-1)
    with pytest.raises(ProtocolError, match="not JSON") as caught:
        await client.get_lists()
    assert "getMessage" in str(caught.value)  # a snippet of what came instead
    assert await _attempts(sandbox) == 1


async def test_rate_limited_waits_about_rate_limit_base_and_succeeds(
    make_client: MakeClient, sandbox: SandboxHandle
) -> None:
    client = make_client(
        retry=RetryPolicy(max_attempts=3, base=0.01, cap=0.02, rate_limit_base=0.3)
    )
    await sandbox.fault(
        method="getLists", kind="error", code="api_call_limit_exceeded_for_api_key", times=1
    )
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        assert await client.get_lists() == []
    assert time.monotonic() - started >= 0.3
    # about rate_limit_base, not Selzy's whole minute: the delay chosen, not the wall clock
    [retry] = [e for e in logs if e["event"] == "api_retry"]
    assert 0.3 <= retry["delay"] <= 0.3 * 1.25
    assert await _attempts(sandbox) == 2


async def test_server_side_call_limit_gives_rate_limited_after_retries(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    await sandbox.settings(rate_limit_per_minute=2)
    await client.get_lists()
    await client.get_lists()
    with pytest.raises(RateLimited) as caught:
        await client.get_lists()
    assert caught.value.code == "api_call_limit_exceeded_for_api_key"
    assert await _attempts(sandbox) == 2 + FAST_RETRY.max_attempts


async def test_connection_refused_is_a_transport_error(make_client: MakeClient) -> None:
    client = make_client(base_url="http://127.0.0.1:9/en/api")
    with client.counting() as counter, pytest.raises(TransportError, match="cannot connect"):
        await client.get_lists()
    assert counter.total == FAST_RETRY.max_attempts


async def test_fault_on_one_method_does_not_touch_others(
    client: SelzyClient, sandbox: SandboxHandle
) -> None:
    await sandbox.fault(method="importContacts", kind="error", code="invalid_arg", times=-1)
    assert await client.get_fields() == []
    with pytest.raises(InvalidArgument):
        await client.import_contacts(["email"], [["a@example.com"]])
