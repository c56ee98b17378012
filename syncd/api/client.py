"""SelzyClient: the async Selzy API client the rest of syncd uses. Owns the aiohttp session, the
retry loop, rate limiting, attempt counting and the `api_retry` log events; it delegates the
wire format (encoding), answer interpretation (envelope, results) and the aiohttp boundary
(transport) to their modules. It knows nothing about jobs, databases or reconciliation.

Every call is a POST of a form body to `{base_url}/{method}`; the API key travels in the body,
never in the URL.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from types import TracebackType
from typing import Self, TypeVar

import aiohttp
import structlog

from syncd import __version__
from syncd.api import results
from syncd.api.counting import CallCounter, counting, record_attempt, record_error
from syncd.api.encoding import FormValue, encode_form
from syncd.api.envelope import interpret
from syncd.api.messages import safe_url
from syncd.api.ratelimit import RateLimiter
from syncd.api.retry import RetryPolicy, Uniform, next_delay
from syncd.api.transport import (
    call_timeout,
    download_timeout,
    iter_body,
    open_get,
    post_form,
)
from syncd.api.types import (
    ContactInfo,
    FieldInfo,
    HookInfo,
    ImportResult,
    ListInfo,
    TaskResult,
)
from syncd.config import SelzyConfig
from syncd.errors import ApiError, ConfigError, SelzyError, TransportError

NOT_FOUND_CODE = "unspecified"  # getContact's code for an unknown address (selzy-api.md §6.1)

log = structlog.get_logger(__name__)

T = TypeVar("T")

MAX_IMPORT_ROWS = 500  # selzy-api.md §3.2: importContacts takes at most 500 rows a call
DEFAULT_DOWNLOAD_READ_TIMEOUT = 60.0  # seconds a download may go without receiving a byte
MAX_CONNECTIONS = 32  # simultaneous connections to Selzy from one client
USER_AGENT = f"syncd/{__version__}"


class SelzyClient:
    """One aiohttp session, shared by every job; use `async with` or `await aclose()`."""

    def __init__(
        self,
        config: SelzyConfig,
        *,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        download_read_timeout: float = DEFAULT_DOWNLOAD_READ_TIMEOUT,
        rng: Uniform | None = None,
    ) -> None:
        if config.api_key is None or not config.api_key.reveal():
            raise ConfigError("selzy: no API key (set $SELZY_API_KEY or selzy.api_key_file)")
        self._key = config.api_key
        self._base_url = config.base_url.rstrip("/")
        self._timeouts = call_timeout(config.timeout)
        self._download_timeouts = download_timeout(download_read_timeout)
        self._limiter = limiter or RateLimiter.shared_for(
            self._base_url,
            self._key.reveal(),
            per_minute=config.rate_limit_per_minute,
            export_per_minute=config.export_rate_limit_per_minute,
            margin=config.rate_limit_margin,
        )
        self._retry = retry or RetryPolicy(max_attempts=config.max_attempts)
        self._rng: Uniform = rng or random.Random()  # noqa: S311 -- jitter, not cryptography
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def limiter(self) -> RateLimiter:
        """The rate limiter this client waits on (shared per key unless one was passed in)."""
        return self._limiter

    def __repr__(self) -> str:
        return f"SelzyClient(base_url={safe_url(self._base_url)!r}, retry={self._retry!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session; the client cannot be used afterwards. Idempotent."""
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @staticmethod
    def counting() -> AbstractContextManager[CallCounter]:
        """Count the HTTP attempts (of any SelzyClient) made in this context and its tasks."""
        return counting()

    # -- API methods -------------------------------------------------------------------------

    async def get_lists(self) -> list[ListInfo]:
        return results.parse_lists(await self._call("getLists", {}))

    async def get_fields(self) -> list[FieldInfo]:
        return results.parse_fields(await self._call("getFields", {}))

    async def create_list(self, title: str) -> int:
        result = await self._call("createList", {"title": title})
        return results.parse_created_id(result, method="createList")

    async def create_field(self, name: str, type: str = "string") -> int:
        result = await self._call("createField", {"name": name, "type": type})
        return results.parse_created_id(result, method="createField")

    async def get_contact(self, email: str) -> ContactInfo:
        params: dict[str, FormValue] = {
            "email": email,
            "include_lists": True,
            "include_fields": True,
        }
        return results.parse_contact(await self._call("getContact", params))

    async def find_contact(self, email: str) -> ContactInfo | None:
        """getContact, with None for an address Selzy does not know (its error envelope with
        code `unspecified`, which is what the not-found answer carries: selzy-api.md §6.1)."""
        try:
            return await self.get_contact(email)
        except SelzyError as exc:
            if type(exc) is SelzyError and exc.code == NOT_FOUND_CODE:
                return None
            raise

    async def set_hook(
        self,
        hook_url: str,
        events: Mapping[str, str],
        *,
        event_format: str = "json_post",
        single_event: bool = False,
        status: str | None = None,
    ) -> HookInfo | None:
        """Register (or replace: `hook_url` is the identity) an event handler; `events` maps
        event name -> `*` or a list id filter; `status="active"` re-enables a stopped one.
        Returns the handler when the answer shows it (its shape is undocumented)."""
        params: dict[str, FormValue] = {
            "hook_url": hook_url,
            "events": dict(events),
            "event_format": event_format,
            "single_event": single_event or None,
            "status": status,
        }
        return results.parse_hook(await self._call("setHook", params), method="setHook")

    async def list_hooks(self) -> list[HookInfo]:
        return results.parse_hooks(await self._call("listHooks", {}))

    async def remove_hook(self, hook_url: str) -> None:
        await self._call("removeHook", {"hook_url": hook_url})

    async def import_contacts(
        self,
        field_names: Sequence[str],
        rows: Sequence[Sequence[str]],
        *,
        overwrite_tags: bool = False,
        overwrite_lists: bool = False,
    ) -> ImportResult:
        """Send up to 500 rows; ValueError (before any request) for more, none, or ragged rows."""
        _check_import(field_names, rows)
        params: dict[str, FormValue] = {
            "field_names": list(field_names),
            "data": rows,
            "overwrite_tags": overwrite_tags,
            "overwrite_lists": overwrite_lists,
        }
        result = await self._call("importContacts", params)
        return results.parse_import(result, rows=len(rows))

    async def export_contacts(
        self, list_id: int, field_names: Sequence[str], *, notify_url: str | None = None
    ) -> TaskResult:
        method = "async/exportContacts"
        params: dict[str, FormValue] = {
            "list_id": list_id,
            "field_names": list(field_names),
            "notify_url": notify_url,
        }
        return results.parse_task(await self._call(method, params), method=method)

    async def get_task_result(self, task_uuid: str) -> TaskResult:
        method = "async/getTaskResult"
        result = await self._call(method, {"task_uuid": task_uuid})
        return results.parse_task(result, method=method)

    @asynccontextmanager
    async def download(
        self, url: str, *, read_timeout: float | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Stream `url` (an export's file_to_download) in 64 KiB chunks.

        Opening the response is retried like an API call (connection errors, timeouts, 5xx);
        once bytes flow nothing is retried: a dropped, stalled (`read_timeout`, default
        DEFAULT_DOWNLOAD_READ_TIMEOUT) or truncated body raises TransportError from the iterator.
        """
        timeouts = (
            self._download_timeouts if read_timeout is None else download_timeout(read_timeout)
        )
        session = self._open_session()

        async def attempt() -> aiohttp.ClientResponse:
            record_attempt("download")
            return await open_get(session, url, timeouts=timeouts)

        response = await self._retrying("download", attempt)
        chunks = iter_body(response, url)
        try:
            yield chunks
        finally:
            await chunks.aclose()
            if response.content.is_eof():
                response.release()
            else:
                response.close()  # unread bytes: the connection cannot be reused

    # -- machinery ---------------------------------------------------------------------------

    def _open_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("SelzyClient is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeouts,
                headers={"User-Agent": USER_AGENT},
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
            )
        return self._session

    async def _call(self, method: str, params: dict[str, FormValue]) -> object:
        """POST `method` with retries; returns the envelope's `result`."""
        key = self._key.reveal()
        body = encode_form({"api_key": key, "format": "json", **params})
        url = f"{self._base_url}/{method}"
        session = self._open_session()

        async def attempt() -> object:
            # The slot is held until the answer is in (and a limit error, raised by interpret,
            # holds back every call on the key): see ratelimit.py on why.
            async with self._limiter.slot(method):
                record_attempt(method)
                status, answer = await post_form(
                    session, url, body, method=method, timeouts=self._timeouts
                )
                envelope = interpret(status, answer, method=method, secrets=(key,))
            if envelope.warnings:
                log.info("api_warnings", method=method, warnings=list(envelope.warnings))
            return envelope.result

        return await self._retrying(method, attempt)

    async def _retrying(self, method: str, attempt: Callable[[], Awaitable[T]]) -> T:
        number = 0
        while True:
            number += 1
            try:
                return await attempt()
            except ApiError as exc:
                record_error(error_code(exc))
                delay = next_delay(self._retry, number, exc, self._rng)
                if delay is None:
                    if number > 1:
                        exc.add_note(f"{method}: gave up after {number} attempts")
                    raise
                log.warning(
                    "api_retry",
                    method=method,
                    attempt=number,
                    delay=round(delay, 3),
                    error_code=error_code(exc),
                    error=str(exc),
                )
                await asyncio.sleep(delay)


def error_code(exc: ApiError) -> str:
    """A short machine name for an API failure, for logs and run records."""
    if isinstance(exc, SelzyError):
        return exc.code
    if isinstance(exc, TransportError):
        return f"http_{exc.status}" if exc.status is not None else "transport"
    return "protocol"


def _check_import(field_names: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    if len(rows) > MAX_IMPORT_ROWS:
        raise ValueError(f"importContacts takes at most {MAX_IMPORT_ROWS} rows, got {len(rows)}")
    if not rows:
        raise ValueError("importContacts needs at least one row")
    if not field_names:
        raise ValueError("importContacts needs field names")
    for index, row in enumerate(rows):
        if len(row) != len(field_names):
            raise ValueError(
                f"importContacts row {index} has {len(row)} values for {len(field_names)} fields"
            )
