"""Per-context attempt counting: concurrent jobs each count only their own calls."""

from __future__ import annotations

import asyncio

from syncd.api.counting import counting, record_attempt, record_error


def test_counts_attempts_by_method_inside_the_block_only() -> None:
    record_attempt("getLists")  # before: not counted
    with counting() as counter:
        record_attempt("importContacts")
        record_attempt("importContacts")
        record_attempt("download")
    record_attempt("getLists")  # after: not counted
    assert counter.total == 3
    assert counter.by_method == {"importContacts": 2, "download": 1}


def test_failed_attempts_are_counted_by_error_code() -> None:
    record_error("retry_later")  # before: not counted
    with counting() as counter:
        record_error("retry_later")
        record_error("http_503")
        record_error("retry_later")
    assert counter.errors == {"retry_later": 2, "http_503": 1}


def test_nested_blocks_both_count() -> None:
    with counting() as outer:
        record_attempt("a")
        with counting() as inner:
            record_attempt("b")
    assert (outer.total, inner.total) == (2, 1)


async def test_concurrent_tasks_count_separately_and_child_tasks_are_included() -> None:
    async def job(method: str, calls: int) -> int:
        with counting() as counter:

            async def child() -> None:
                await asyncio.sleep(0)
                record_attempt(method)

            for _ in range(calls):
                await asyncio.sleep(0)
                record_attempt(method)
            await asyncio.gather(child(), child())
        return counter.total

    assert list(await asyncio.gather(job("a", 3), job("b", 5))) == [5, 7]
