"""Serving finished export files: streams the stored CSV chunks with a Content-Length, and acts
out the download faults (truncate, garbage, bad_encoding and the generic ones).

Reads through its own SQLite connection in worker threads; never holds a whole file in memory.
"""

from __future__ import annotations

import asyncio
import sqlite3

from aiohttp import web

from syncd.sandbox.faultplay import play
from syncd.sandbox.state import SANDBOX

GARBAGE = (
    b"<html><body><h1>502 Bad Gateway</h1><p>The export storage is unavailable.</p></body></html>"
)
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"


def _chunk(conn: sqlite3.Connection, file_id: str, seq: int) -> bytes:
    """Chunk `seq` of the file, b"" after the last one."""
    row = conn.execute(
        "SELECT data FROM export_chunks WHERE file_id = ? AND seq = ?", (file_id, seq)
    ).fetchone()
    return b"" if row is None else bytes(row[0])


def _bad_line(header: bytes) -> bytes:
    columns = header.count(b",") + 1
    return b"bad\xff\xfe\xc3(@example.com" + b"," * (columns - 1) + b"\n"


async def download(request: web.Request) -> web.StreamResponse:
    sb = request.app[SANDBOX]
    file_id = request.match_info["name"].removesuffix(".csv")
    sb.calls.record("download", {"file": file_id})
    fault = sb.faults.take("download")
    if fault is not None and fault.kind not in ("truncate", "garbage", "bad_encoding"):
        replaced = await play(request, fault, sb.closing)
        if replaced is not None:
            return replaced
    kind = fault.kind if fault is not None else None
    export = sb.engine.live_file(file_id)
    if export is None:
        return web.Response(status=404, text="File not found or expired")
    if kind == "garbage":
        return web.Response(body=GARBAGE, content_type="text/html")
    conn = await asyncio.to_thread(sb.db.reader)
    try:
        header = await asyncio.to_thread(_chunk, conn, file_id, 0)
        extra = _bad_line(header) if kind == "bad_encoding" else b""
        response = web.StreamResponse(headers={"Content-Type": CSV_CONTENT_TYPE})
        response.content_length = export.stats.size + len(extra)
        await response.prepare(request)
        budget = response.content_length // 2 if kind == "truncate" else None
        seq, data = 0, header + extra
        while data:
            if budget is not None and len(data) >= budget:
                await response.write(data[:budget])
                await asyncio.sleep(0.05)  # let the partial body reach the client first
                if request.transport is not None:
                    request.transport.abort()
                return response
            await response.write(data)
            if budget is not None:
                budget -= len(data)
            seq += 1
            data = await asyncio.to_thread(_chunk, conn, file_id, seq)
    finally:
        await asyncio.to_thread(conn.close)
    await response.write_eof()
    return response
