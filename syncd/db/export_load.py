"""Staging a Selzy list export in PostgreSQL: the CSV body streams from the download into a temp
table through COPY, chunk by chunk, never held whole in memory.

Owns reading and checking the header line, the temp table's shape and the translation of COPY's
complaints into ExportError with the file's line number. It must not interpret the contacts:
that is set-based SQL in reconcile/.
"""

from __future__ import annotations

import csv
import re
from collections.abc import AsyncIterator, Sequence

import asyncpg
import structlog

from syncd.db.pool import Connection, translating
from syncd.db.source import quote_ident
from syncd.db.templates import Ident, join, render
from syncd.errors import ExportError

log = structlog.get_logger(__name__)

UTF8_BOM = b"\xef\xbb\xbf"
MAX_HEADER_BYTES = 64 * 1024  # a header longer than this is not a Selzy export
# SQLSTATE class 22 (data exception) and 54000 (a line too long for COPY) come from the file's
# contents; anything else during COPY is the database's problem, not the file's.
_FILE_SQLSTATE_CLASSES = ("22", "54")
_COPY_LINE = re.compile(r"\bline (\d+)\b")


async def _read_header(chunks: AsyncIterator[bytes]) -> tuple[bytes, bytes]:
    """(header line without its line end, the bytes after it) from the start of the stream."""
    buffer = b""
    while b"\n" not in buffer:
        if len(buffer) > MAX_HEADER_BYTES:
            raise ExportError(f"export header line is longer than {MAX_HEADER_BYTES} bytes")
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            if not buffer.removeprefix(UTF8_BOM):
                raise ExportError("export file is empty") from None
            raise ExportError("export file is truncated: the last line has no line end") from None
        buffer += chunk
    line, _, rest = buffer.partition(b"\n")
    return line.removeprefix(UTF8_BOM).removesuffix(b"\r"), rest


def parse_header(line: bytes, required: Sequence[str]) -> list[str]:
    """The column names of the export's header line; ExportError when unusable."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExportError(f"export header is not valid UTF-8 (byte {exc.start + 1})") from None
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise ExportError(f"export header is not valid CSV: {exc}") from None
    names = rows[0] if rows else []
    if not names or any(not name.strip() for name in names):
        raise ExportError("export header has an empty column name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ExportError(f"export header repeats column(s) {', '.join(duplicates)}")
    missing = [name for name in required if name not in names]
    if missing:
        raise ExportError(
            f"export header lacks required column(s) {', '.join(missing)} "
            f"(it has {', '.join(names)})"
        )
    for name in names:
        try:
            quote_ident(name)
        except ValueError as exc:
            raise ExportError(f"export header has an unusable column name: {exc}") from None
    return names


class _Body:
    """The bytes after the header, as an async iterator for COPY; remembers the last byte."""

    def __init__(self, first: bytes, chunks: AsyncIterator[bytes]) -> None:
        self.first = first
        self.chunks = chunks
        self.last_byte = b"\n"  # the header's own line end, if the body turns out empty

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.first:
            self.last_byte = self.first[-1:]
            yield self.first
        self.first = b""
        async for chunk in self.chunks:
            if chunk:
                self.last_byte = chunk[-1:]
                yield chunk
        if self.last_byte != b"\n":
            # Raising here makes asyncpg abort the COPY: a truncated file loads nothing.
            raise ExportError("export file is truncated: the last line has no line end")


def _copy_error(exc: asyncpg.PostgresError) -> ExportError:
    """ExportError naming the file line of a COPY complaint.

    PostgreSQL counts CSV records of the body; +1 for the header makes it the file's line
    number, as long as no quoted field before it spans lines (Selzy's key and status fields
    never do). The context's copy of the row's data is left out: it is contact data.
    """
    reason = exc.args[0] if exc.args else type(exc).__name__
    match = _COPY_LINE.search(getattr(exc, "context", None) or "")
    where = f"line {int(match[1]) + 1} of the export" if match else "the export"
    return ExportError(f"{where}: {reason}")


async def load_export(
    conn: Connection,
    chunks: AsyncIterator[bytes],
    *,
    required: Sequence[str],
    table: str = "syncd_export",
) -> int:
    """Stream a CSV export into TEMP TABLE `table` (one text column per header field); row count.

    ExportError when the file is empty, its header is not UTF-8 CSV naming every `required`
    column once, a line is malformed (the message names it), or the file ends mid-line.
    A header-only file is a valid empty list. The table is dropped first if it exists.
    """
    header, rest = await _read_header(chunks)
    names = parse_header(header, required)
    staging = Ident(table)
    columns = join(render("export_text_column", column=Ident(name)) for name in names)
    body = _Body(rest, chunks)
    with translating(conn=conn):
        await conn.execute(render("export_drop_table", table=staging).sql)
        await conn.execute(render("export_create_table", table=staging, columns=columns).sql)
        try:
            result = await conn.copy_to_table(
                table,
                schema_name="pg_temp",
                source=body,
                columns=names,
                format="csv",
                encoding="utf8",
            )
        except asyncpg.PostgresError as exc:
            if (exc.sqlstate or "")[:2] in _FILE_SQLSTATE_CLASSES:
                raise _copy_error(exc) from exc
            raise
    rows = int(result.rsplit(" ", 1)[-1])
    log.debug("export_loaded", rows=rows, columns=len(names))
    return rows
