"""The one exception tree of syncd; every module raises from here, foreign errors are translated
at the boundary that owns the dependency (api/ for aiohttp, db/ for asyncpg).

    SyncdError
    ├── ConfigError                 bad configuration; exit 78, never retried
    ├── UsageError                  bad command line; exit 2
    ├── DatabaseError               PostgreSQL failed; `retryable` by SQLSTATE class
    │   └── SchemaError             syncd's schema is missing or newer than this code
    ├── ApiError                    anything that went wrong talking to Selzy
    │   ├── TransportError          connection refused/reset, timeout, HTTP 5xx   (retryable)
    │   ├── ProtocolError           the answer is not a Selzy envelope we understand (not retried)
    │   └── SelzyError              an error envelope; `code` is Selzy's code
    │       ├── RetryLater          retry_later                                  (retryable)
    │       ├── RateLimited         api_call_limit_exceeded_for_* (retryable, long back-off)
    │       ├── AuthError           invalid_api_key, access_denied
    │       ├── InvalidArgument     invalid_arg
    │       ├── CallRefused         a refusal of the whole call, not of any row (fails the run)
    │       └── (SelzyError itself) unspecified, unknown_method, not_enough_money, new codes
    ├── ExportError                 the export is unusable (malformed, truncated, too slow)
    ├── JobBusy                     another process is running this job right now
    ├── RunInterrupted              the run was asked to stop (SIGTERM) before it finished
    └── ConsentViolation            a row would break a consent rule; a bug guard, never sent

`retryable` is a class attribute so that the retry decision is data, not message parsing.
"""

from __future__ import annotations


class SyncdError(Exception):
    """Root of every error syncd raises on purpose."""

    retryable: bool = False


class ConfigError(SyncdError):
    """The configuration is unusable. `problems` lists every problem found, each naming its key."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class UsageError(SyncdError):
    """The command line is wrong (exit status 2)."""


class DatabaseError(SyncdError):
    """PostgreSQL refused or failed. `sqlstate` is set when the server gave one."""

    def __init__(
        self, message: str, *, sqlstate: str | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.retryable = retryable


class SchemaError(DatabaseError):
    """syncd's own schema is missing (run `syncd migrate`) or newer than this version of syncd."""


class ApiError(SyncdError):
    """Talking to Selzy failed. `method` is the API method, never a URL with a key in it."""

    def __init__(self, message: str, *, method: str | None = None) -> None:
        super().__init__(message)
        self.method = method


class TransportError(ApiError):
    """The request did not get a usable HTTP answer: connection error, timeout, HTTP 5xx."""

    retryable = True

    def __init__(
        self, message: str, *, method: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, method=method)
        self.status = status


class ProtocolError(ApiError):
    """The answer is not what the Selzy API documents (not JSON, missing fields, wrong types)."""


class SelzyError(ApiError):
    """Selzy answered with an error envelope: {"error": message, "code": code}."""

    def __init__(self, message: str, *, code: str, method: str | None = None) -> None:
        super().__init__(message, method=method)
        self.code = code


class RetryLater(SelzyError):
    """`retry_later`: a temporary failure on Selzy's side."""

    retryable = True


class RateLimited(SelzyError):
    """`api_call_limit_exceeded_for_api_key` / `_for_ip`: back off for about a minute."""

    retryable = True


class AuthError(SelzyError):
    """`invalid_api_key` or `access_denied`: a configuration problem, never retried."""


class InvalidArgument(SelzyError):
    """`invalid_arg`: the request itself is wrong, never retried as is."""


class CallRefused(SelzyError):
    """Selzy refused a batch as a call (every part of it alike, or a field or list it does not
    have): no row caused it, so no contact is counted as rejected or quarantined for it."""


class ExportError(SyncdError):
    """The list export could not be obtained or read: task deadline, malformed or truncated file."""


class JobBusy(SyncdError):
    """Another syncd process holds this job's lock; the run did not start."""


class RunInterrupted(SyncdError):
    """The run was asked to stop before it finished; what was pushed so far is recorded."""


SELZY_ERROR_TYPES: dict[str, type[SelzyError]] = {
    "retry_later": RetryLater,
    "api_call_limit_exceeded_for_api_key": RateLimited,
    "api_call_limit_exceeded_for_ip": RateLimited,
    "invalid_api_key": AuthError,
    "access_denied": AuthError,
    "invalid_arg": InvalidArgument,
}


def selzy_error(message: str, code: str, *, method: str | None = None) -> SelzyError:
    """The SelzyError subclass for Selzy's `code`; unknown codes give a plain, non-retryable one."""
    return SELZY_ERROR_TYPES.get(code, SelzyError)(message, code=code, method=method)


class ConsentViolation(SyncdError):
    """A row about to be sent would break a consent rule (a status other than the opt-out's
    `unsubscribed`, a list column on the wrong action). A bug guard: the batch is never sent."""
