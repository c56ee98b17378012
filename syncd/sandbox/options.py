"""The sandbox's start-up options (frozen) and the runtime settings the admin API may change.

Owns defaults only; it must not read the environment or touch the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 8765
DEFAULT_API_KEY = "sandbox"
DEFAULT_LOGIN = "sandbox"  # the account login that webhook bodies carry


@dataclass(frozen=True, slots=True)
class SandboxOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    export_delay: float = 2.0  # seconds from async/exportContacts to `completed`
    state_file: Path | None = None  # None: a temporary database deleted on exit
    rate_limit_per_minute: int = 1200  # all API calls per key, sliding 60 s window; 0 = unlimited
    export_rate_limit_per_minute: int = 20  # async/exportContacts per key; 0 = unlimited
    file_ttl: float = 3600.0  # seconds a finished export file stays downloadable
    callback_retries: int = 3  # extra notify_url attempts after a failed one
    callback_timeout: float = 5.0  # seconds per notify_url attempt
    callback_backoff: float = 0.2  # first retry delay, doubled per attempt
    login: str = DEFAULT_LOGIN
    hook_batch_delay: float = 1.0  # seconds events are gathered before a webhook POST
    hook_timeout: float = 3.0  # seconds a webhook receiver has to answer 200 (§11.5)
    hook_retry_interval: float = 600.0  # seconds between attempts of a failed webhook POST
    hook_retry_window: float = 86_400.0  # seconds of failures after which a hook is stopped


@dataclass(slots=True)
class Settings:
    """The mutable subset of the options; `POST /_sandbox/settings` changes these."""

    export_delay: float
    rate_limit_per_minute: int
    export_rate_limit_per_minute: int
    file_ttl: float
    callback_retries: int
    login: str
    hook_batch_delay: float
    hook_timeout: float
    hook_retry_interval: float
    hook_retry_window: float

    @classmethod
    def from_options(cls, options: SandboxOptions) -> Settings:
        return cls(
            export_delay=options.export_delay,
            rate_limit_per_minute=options.rate_limit_per_minute,
            export_rate_limit_per_minute=options.export_rate_limit_per_minute,
            file_ttl=options.file_ttl,
            callback_retries=options.callback_retries,
            login=options.login,
            hook_batch_delay=options.hook_batch_delay,
            hook_timeout=options.hook_timeout,
            hook_retry_interval=options.hook_retry_interval,
            hook_retry_window=options.hook_retry_window,
        )

    def update(self, changes: dict[str, object]) -> list[str]:
        """Apply known keys with their type checked; return the names of unknown or bad keys."""
        bad: list[str] = []
        for key, value in changes.items():
            current = getattr(self, key, None) if key in self.__slots__ else None
            if isinstance(current, str):
                if not isinstance(value, str) or not value.strip():
                    bad.append(key)
                    continue
                setattr(self, key, value.strip())
                continue
            if current is None or isinstance(value, bool) or not isinstance(value, int | float):
                bad.append(key)
                continue
            setattr(self, key, type(current)(value))
        return bad
