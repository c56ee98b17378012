"""The aiohttp boundary: one HTTP attempt, with every foreign exception translated into
TransportError (or ProtocolError) here. No retries, no rate limiting, no envelope parsing.

Messages name the method and, for downloads, the URL without its query string; they never
quote aiohttp's own exception text, which can contain a full URL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import aiohttp

from syncd.api.encoding import FORM_CONTENT_TYPE
from syncd.api.messages import safe_url
from syncd.errors import ProtocolError, TransportError

DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds to establish a TCP (+TLS) connection
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # API answers are small; more than this is not Selzy talking
DOWNLOAD_CHUNK_BYTES = 64 * 1024

TRANSLATED = (aiohttp.ClientError, asyncio.TimeoutError)  # what an attempt may raise at us
UNUSABLE_URL = (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)  # retrying will not help


def call_timeout(timeout: float) -> aiohttp.ClientTimeout:
    """Timeout of one API call: `timeout` for the whole exchange and for any silence."""
    return aiohttp.ClientTimeout(
        total=timeout, connect=min(timeout, DEFAULT_CONNECT_TIMEOUT), sock_read=timeout
    )


def download_timeout(read_timeout: float) -> aiohttp.ClientTimeout:
    """Timeout of a download: no total (the file may be large), but at most `read_timeout`
    seconds without a single byte arriving."""
    return aiohttp.ClientTimeout(
        total=None, connect=min(read_timeout, DEFAULT_CONNECT_TIMEOUT), sock_read=read_timeout
    )


def translate(
    exc: BaseException, *, method: str, where: str = ""
) -> TransportError | ProtocolError:
    """The syncd error for an aiohttp/asyncio failure. A URL aiohttp cannot use is not worth
    retrying (ProtocolError); everything else kept us from an answer (TransportError)."""
    suffix = f" ({where})" if where else ""
    if isinstance(exc, UNUSABLE_URL):
        return ProtocolError(f"{method}: unusable URL{suffix}", method=method)
    return TransportError(f"{method}: {describe(exc)}{suffix}", method=method)


def describe(exc: BaseException) -> str:
    """A short, secret-free description of an aiohttp/asyncio failure."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect timed out"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return "read timed out"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port}"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "answer body cut short"
    return f"connection failed ({type(exc).__name__})"


async def post_form(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    method: str,
    timeouts: aiohttp.ClientTimeout,
) -> tuple[int, bytes]:
    """POST one form body; returns (status, body). Raises TransportError for anything that kept
    us from a complete HTTP answer."""
    try:
        async with session.post(
            url,
            data=body,
            headers={"Content-Type": FORM_CONTENT_TYPE},
            timeout=timeouts,
            allow_redirects=False,  # a redirected POST would lose its body (and the key with it)
        ) as response:
            return response.status, await _read_bounded(response, method)
    except TRANSLATED as exc:
        raise translate(exc, method=method) from exc


async def _read_bounded(response: aiohttp.ClientResponse, method: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(DOWNLOAD_CHUNK_BYTES):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise ProtocolError(
                f"{method}: answer larger than {MAX_ANSWER_BYTES} bytes", method=method
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def open_get(
    session: aiohttp.ClientSession, url: str, *, timeouts: aiohttp.ClientTimeout
) -> aiohttp.ClientResponse:
    """Start a GET and return the response once its headers are in and its status is 200.
    The caller owns the response (close it). Non-200: TransportError for 5xx, else ProtocolError."""
    where = safe_url(url)
    try:
        response = await session.get(url, timeout=timeouts)
    except TRANSLATED as exc:
        raise translate(exc, method="download", where=where) from exc
    if response.status == 200:
        return response
    response.close()
    if response.status >= 500:
        raise TransportError(
            f"download: HTTP {response.status} ({where})", method="download", status=response.status
        )
    raise ProtocolError(f"download: HTTP {response.status} ({where})", method="download")


async def iter_body(response: aiohttp.ClientResponse, url: str) -> AsyncGenerator[bytes, None]:
    """The body of `response` in chunks; TransportError if the connection drops, stalls past
    the read timeout, or ends before Content-Length (or the chunked terminator) says it should."""
    where = safe_url(url)
    # With Content-Encoding aiohttp decompresses, so Content-Length no longer counts what we get.
    expected = None if response.headers.get("Content-Encoding") else response.content_length
    received = 0
    try:
        async for chunk in response.content.iter_chunked(DOWNLOAD_CHUNK_BYTES):
            received += len(chunk)
            yield chunk
    except TRANSLATED as exc:
        raise TransportError(
            f"download: {describe(exc)} after {received} bytes ({where})", method="download"
        ) from exc
    if expected is not None and received != expected:
        raise TransportError(
            f"download: body ended after {received} of {expected} bytes ({where})",
            method="download",
        )
