"""Staging the list export: streamed through COPY, malformed files refused with the line named."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import AsyncIterator, Iterable

import pytest

from syncd.db import Connection, load_export
from syncd.errors import ExportError

REQUIRED = ("email", "email_status", "email_list_ids")
HEADER = b"email,email_status,email_list_ids\n"


async def chunks_of(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    """The file in small pieces, so that lines, quotes and the BOM straddle chunk boundaries."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def stream(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def rows_of(conn: Connection) -> list[tuple[str | None, ...]]:
    return [tuple(r) for r in await conn.fetch("SELECT * FROM pg_temp.syncd_export")]


async def load_failure(conn: Connection, data: bytes, size: int = 7) -> str:
    with pytest.raises(ExportError) as caught:
        await load_export(conn, chunks_of(data, size), required=REQUIRED)
    return str(caught.value)


async def test_a_good_file_lands_in_a_temp_table_with_one_text_column_per_header_field(
    db: Connection,
) -> None:
    data = HEADER + b'a@example.com,active,1\nb@example.com,unsubscribed,"1,2"\n'
    assert await load_export(db, chunks_of(data), required=REQUIRED) == 2
    assert await rows_of(db) == [
        ("a@example.com", "active", "1"),
        ("b@example.com", "unsubscribed", "1,2"),
    ]
    columns = await db.fetch(
        "SELECT attname, format_type(atttypid, NULL) AS type FROM pg_attribute"
        " WHERE attrelid = 'pg_temp.syncd_export'::regclass AND attnum > 0 ORDER BY attnum"
    )
    assert [(c["attname"], c["type"]) for c in columns] == [
        ("email", "text"),
        ("email_status", "text"),
        ("email_list_ids", "text"),
    ]
    persistence = await db.fetchval(
        "SELECT relpersistence::text FROM pg_class WHERE oid = 'pg_temp.syncd_export'::regclass"
    )
    assert persistence == "t"


async def test_extra_header_columns_are_kept_and_order_does_not_matter(db: Connection) -> None:
    data = b"phone,email_list_ids,email,email_status\n+100,1,a@example.com,active\n"
    assert await load_export(db, chunks_of(data), required=REQUIRED) == 1
    assert await db.fetchval("SELECT phone FROM pg_temp.syncd_export") == "+100"


async def test_quoted_fields_may_hold_commas_quotes_and_newlines(db: Connection) -> None:
    data = HEADER + b'"a@example.com","act""ive","1,\n2"\n"",,\n'
    assert await load_export(db, chunks_of(data, 3), required=REQUIRED) == 2
    assert await rows_of(db) == [("a@example.com", 'act"ive', "1,\n2"), ("", None, None)]


async def test_a_bom_and_crlf_line_ends_are_accepted(db: Connection) -> None:
    data = b"\xef\xbb\xbf" + HEADER.replace(b"\n", b"\r\n") + b"a@example.com,active,1\r\n"
    assert await load_export(db, chunks_of(data, 1), required=REQUIRED) == 1
    assert await rows_of(db) == [("a@example.com", "active", "1")]


async def test_utf8_values_arrive_intact(db: Connection) -> None:
    data = HEADER + "jörg@bücher.de,active,Ωμέγα 🎉\n".encode()
    assert await load_export(db, chunks_of(data, 5), required=REQUIRED) == 1
    assert await rows_of(db) == [("jörg@bücher.de", "active", "Ωμέγα 🎉")]


async def test_a_header_only_file_is_an_empty_list(db: Connection) -> None:
    assert await load_export(db, chunks_of(HEADER), required=REQUIRED) == 0
    assert await rows_of(db) == []


async def test_loading_again_replaces_the_previous_export(db: Connection) -> None:
    await load_export(db, chunks_of(HEADER + b"a@example.com,active,1\n"), required=REQUIRED)
    other = b"email,email_status,email_list_ids,phone\nb@example.com,new,2,+1\n"
    assert await load_export(db, chunks_of(other), required=REQUIRED) == 1
    assert await rows_of(db) == [("b@example.com", "new", "2", "+1")]


async def test_a_users_permanent_table_of_the_same_name_is_left_alone(db: Connection) -> None:
    await db.execute(
        "CREATE TABLE public.syncd_export (keep text);INSERT INTO public.syncd_export VALUES ('me')"
    )
    await load_export(db, chunks_of(HEADER + b"a@example.com,active,1\n"), required=REQUIRED)
    assert await db.fetchval("SELECT keep FROM public.syncd_export") == "me"


async def test_an_empty_body_is_an_error(db: Connection) -> None:
    assert await load_failure(db, b"") == "export file is empty"
    with pytest.raises(ExportError, match="export file is empty"):
        await load_export(db, stream([]), required=REQUIRED)


async def test_a_header_without_a_required_column_is_an_error(db: Connection) -> None:
    message = await load_failure(db, b"email,phone\na@example.com,+1\n")
    assert message == (
        "export header lacks required column(s) email_status, email_list_ids (it has email, phone)"
    )


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (b"email,,email_status,email_list_ids\n", "export header has an empty column name"),
        (
            b"email,email,email_status,email_list_ids\n",
            "export header repeats column(s) email",
        ),
        (b'email,"email_status,email_list_ids\n', "export header is not valid CSV"),
        (b"email,email_status\xff,email_list_ids\n", "export header is not valid UTF-8"),
        (b"email,email_status,email_list_ids," + b"x" * 70 + b"\n", "unusable column name"),
    ],
)
async def test_a_bad_header_is_an_error(db: Connection, header: bytes, problem: str) -> None:
    assert problem in await load_failure(db, header + b"a,b,c\n")


async def test_a_wrong_column_count_names_the_line_of_the_file(db: Connection) -> None:
    data = HEADER + b"a@example.com,active,1\nb@example.com,active,1,extra\n"
    assert await load_failure(db, data) == (
        "line 3 of the export: extra data after last expected column"
    )
    short = HEADER + b"a@example.com,active,1\n" * 5 + b"b@example.com,active\n"
    assert await load_failure(db, short) == (
        'line 7 of the export: missing data for column "email_list_ids"'
    )


async def test_invalid_utf8_in_a_row_names_the_line(db: Connection) -> None:
    data = HEADER + b"a@example.com,active,1\nb\xff@example.com,active,1\n"
    message = await load_failure(db, data)
    assert message.startswith("line 3 of the export: invalid byte sequence for encoding")


async def test_a_file_without_a_final_line_end_is_truncated_and_loads_nothing(
    db: Connection,
) -> None:
    data = HEADER + b"a@example.com,active,1\nb@example.com,act"
    assert await load_failure(db, data) == (
        "export file is truncated: the last line has no line end"
    )
    assert await rows_of(db) == [], "the aborted COPY left nothing behind"
    assert await db.fetchval("SELECT 1") == 1, "the connection is still usable"


async def test_a_header_without_a_line_end_is_truncated(db: Connection) -> None:
    message = await load_failure(db, HEADER.rstrip(b"\n"))
    assert message == "export file is truncated: the last line has no line end"


async def test_an_unterminated_quote_is_an_error(db: Connection) -> None:
    message = await load_failure(db, HEADER + b'a@example.com,active,"1\n')
    assert message == "line 2 of the export: unterminated CSV quoted field"


async def test_the_download_failing_midway_propagates_and_loads_nothing(db: Connection) -> None:
    class DownloadBroke(Exception):
        pass

    async def broken() -> AsyncIterator[bytes]:
        yield HEADER + b"a@example.com,active,1\n"
        raise DownloadBroke

    with pytest.raises(DownloadBroke):
        await load_export(db, broken(), required=REQUIRED)
    assert await rows_of(db) == []


async def generated_export(rows: int, rows_per_chunk: int = 1000) -> AsyncIterator[bytes]:
    """An export made up on the fly: at no time more than one chunk exists."""
    yield HEADER
    for start in range(0, rows, rows_per_chunk):
        end = min(start + rows_per_chunk, rows)
        yield b"".join(
            b'user%d@example.com,active,"1,%d"\n' % (i, i % 7) for i in range(start, end)
        )


async def test_a_large_export_streams_without_memory_growing_with_its_size(
    db: Connection,
) -> None:
    rows = 200_000  # about 7 MB of CSV
    gc.collect()
    tracemalloc.start()
    try:
        assert await load_export(db, generated_export(rows), required=REQUIRED) == rows
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * 1024 * 1024, f"peak Python allocation {peak} bytes"
    assert await db.fetchval("SELECT count(DISTINCT email) FROM pg_temp.syncd_export") == rows


@pytest.mark.slow
async def test_a_million_row_export_loads(db: Connection) -> None:
    rows = 1_000_000
    assert await load_export(db, generated_export(rows, 5000), required=REQUIRED) == rows
    assert await db.fetchval("SELECT count(*) FROM pg_temp.syncd_export") == rows
