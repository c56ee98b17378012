"""Retry policy as data and the retry decision as a pure function (no sleeping, no I/O).

    error                                   next delay
    RateLimited (both call-limit codes)     rate_limit_base .. 1.25 x rate_limit_base
    other retryable (TransportError: connection, timeout, HTTP 5xx; RetryLater)
                                            full jitter: uniform(0, min(cap, base x 2^(attempt-1)))
    anything else (AuthError, InvalidArgument, plain SelzyError, ProtocolError, non-syncd errors)
                                            None: do not retry
    attempt >= max_attempts                 None

Whether an error is retryable is `SyncdError.retryable` (errors.py), never its message.
A rate-limited call's own delay is only half the story: the shared RateLimiter also holds back
every other call on the key for about a minute (ratelimit.py), and the retry waits there too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from syncd.errors import RateLimited, SyncdError

DEFAULT_BASE = 1.0  # seconds; first back-off is up to this
DEFAULT_CAP = 30.0  # seconds; no single back-off (except for rate limits) is longer
DEFAULT_RATE_LIMIT_BASE = 60.0  # Selzy's call limits are per minute (selzy-api.md §8.2)
RATE_LIMIT_JITTER = 0.25  # up to +25 %, so that jobs sharing a key do not return in lockstep


class Uniform(Protocol):
    """What next_delay needs from a random source (random.Random fits)."""

    def uniform(self, a: float, b: float, /) -> float: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`max_attempts` counts every attempt, the first included (1 = never retry)."""

    max_attempts: int = 5
    base: float = DEFAULT_BASE
    cap: float = DEFAULT_CAP
    rate_limit_base: float = DEFAULT_RATE_LIMIT_BASE

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.base, self.cap, self.rate_limit_base) < 0:
            raise ValueError("retry delays must not be negative")


def next_delay(
    policy: RetryPolicy, attempt: int, error: BaseException, rng: Uniform
) -> float | None:
    """Seconds to wait before the next attempt after attempt number `attempt` (1-based) failed
    with `error`, or None when the call must give up and raise `error`."""
    if attempt >= policy.max_attempts:
        return None
    if not isinstance(error, SyncdError) or not error.retryable:
        return None
    if isinstance(error, RateLimited):
        return rng.uniform(policy.rate_limit_base, policy.rate_limit_base * (1 + RATE_LIMIT_JITTER))
    ceiling = min(policy.cap, policy.base * 2.0 ** min(attempt - 1, 60))
    return rng.uniform(0.0, ceiling)
