"""Acting out an injected fault on one HTTP exchange (API call or file download).

`play` returns a response to send instead of the real one, or None to carry on normally (after
latency, or when the fault only changes what happens later, like export_never_finishes).
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from syncd.sandbox.envelope import failure
from syncd.sandbox.faults import Fault
from syncd.sandbox.state import NEVER_FINISHES

HTML_ERROR = (
    "<html><head><title>{status} Error</title></head>"
    "<body><h1>{status} Error</h1><p>nginx</p></body></html>"
)
NOT_JSON = "<br />\n<b>Fatal error</b>: Call to a member function getMessage() on boolean<br />"


class Dropped(web.Response):
    """Marker response for a connection that was already aborted."""


def drop(request: web.Request) -> web.StreamResponse:
    """Close the TCP connection without sending any answer."""
    if request.transport is not None:
        request.transport.abort()
    return Dropped(status=599)


async def play(
    request: web.Request, fault: Fault, closing: asyncio.Event
) -> web.StreamResponse | None:
    if fault.kind == "error":
        return failure(fault.code, fault.message)
    if fault.kind == "http_status":
        return web.Response(
            status=fault.status,
            text=HTML_ERROR.format(status=fault.status),
            content_type="text/html",
        )
    if fault.kind == "latency":
        await asyncio.sleep(fault.delay)
        return None
    if fault.kind == "hang":
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), fault.delay)
        return drop(request) if closing.is_set() else None
    if fault.kind == "drop":
        return drop(request)
    if fault.kind == "bad_json":
        return web.Response(text=NOT_JSON, content_type="application/json", charset="utf-8")
    if fault.kind == "export_never_finishes":
        request[NEVER_FINISHES] = True
    return None
