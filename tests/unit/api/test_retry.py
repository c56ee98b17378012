"""The retry decision, table-driven and without sleeping (STYLE.md principle 5)."""

from __future__ import annotations

import random

import pytest

from syncd.api.retry import RetryPolicy, next_delay
from syncd.errors import (
    AuthError,
    ConfigError,
    InvalidArgument,
    ProtocolError,
    RateLimited,
    RetryLater,
    SelzyError,
    TransportError,
    selzy_error,
)

POLICY = RetryPolicy(max_attempts=5, base=1.0, cap=8.0, rate_limit_base=60.0)


class Extreme:
    """A random source that always picks the upper (or lower) end, to see the bounds."""

    def __init__(self, upper: bool) -> None:
        self.upper = upper

    def uniform(self, a: float, b: float, /) -> float:
        return b if self.upper else a


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (TransportError("reset"), True),
        (TransportError("503", status=503), True),
        (RetryLater("busy", code="retry_later"), True),
        (RateLimited("slow down", code="api_call_limit_exceeded_for_api_key"), True),
        (RateLimited("slow down", code="api_call_limit_exceeded_for_ip"), True),
        (AuthError("bad key", code="invalid_api_key"), False),
        (AuthError("denied", code="access_denied"), False),
        (InvalidArgument("bad arg", code="invalid_arg"), False),
        (SelzyError("what", code="unknown_method"), False),
        (SelzyError("what", code="unspecified"), False),
        (ProtocolError("not json"), False),
        (ConfigError("nope"), False),
        (ValueError("not ours"), False),
    ],
)
def test_which_errors_are_retried(error: BaseException, retried: bool) -> None:
    delay = next_delay(POLICY, 1, error, random.Random(1))
    assert (delay is not None) is retried


@pytest.mark.parametrize(
    "code",
    [
        "retry_later",
        "api_call_limit_exceeded_for_api_key",
        "api_call_limit_exceeded_for_ip",
    ],
)
def test_retryable_selzy_codes_via_selzy_error(code: str) -> None:
    assert next_delay(POLICY, 1, selzy_error("m", code), random.Random(1)) is not None


@pytest.mark.parametrize(
    "code", ["invalid_api_key", "access_denied", "invalid_arg", "unknown_method", "unspecified"]
)
def test_never_retried_selzy_codes(code: str) -> None:
    assert next_delay(POLICY, 1, selzy_error("m", code), random.Random(1)) is None


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)])
def test_backoff_is_full_jitter_under_an_exponential_ceiling(attempt: int, ceiling: float) -> None:
    error = TransportError("reset")
    assert next_delay(POLICY, attempt, error, Extreme(upper=True)) == ceiling
    assert next_delay(POLICY, attempt, error, Extreme(upper=False)) == 0.0


def test_backoff_ceiling_is_capped() -> None:
    policy = RetryPolicy(max_attempts=100, base=1.0, cap=8.0)
    assert next_delay(policy, 50, TransportError("x"), Extreme(upper=True)) == 8.0


def test_rate_limit_waits_about_rate_limit_base() -> None:
    error = RateLimited("slow", code="api_call_limit_exceeded_for_api_key")
    assert next_delay(POLICY, 1, error, Extreme(upper=False)) == 60.0
    assert next_delay(POLICY, 4, error, Extreme(upper=True)) == 75.0


def test_jittered_delays_stay_within_bounds() -> None:
    rng = random.Random(42)
    for attempt in range(1, 5):
        delay = next_delay(POLICY, attempt, TransportError("x"), rng)
        assert delay is not None
        assert 0.0 <= delay <= min(8.0, 2.0 ** (attempt - 1))


@pytest.mark.parametrize("max_attempts", [1, 2, 5])
def test_no_retry_once_max_attempts_is_reached(max_attempts: int) -> None:
    policy = RetryPolicy(max_attempts=max_attempts, base=0.0, cap=0.0, rate_limit_base=0.0)
    for attempt in range(1, max_attempts):
        assert next_delay(policy, attempt, TransportError("x"), random.Random(0)) is not None
    assert next_delay(policy, max_attempts, TransportError("x"), random.Random(0)) is None
    limited = RateLimited("x", code="api_call_limit_exceeded_for_ip")
    assert next_delay(policy, max_attempts, limited, random.Random(0)) is None


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"base": -1.0}, {"cap": -1.0}, {"rate_limit_base": -0.5}]
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
