"""The SQL file loader: named blocks, found once, with mistakes caught at load time."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.db.sql import QUERIES, load_queries, parse_queries, sql_dir


def test_every_block_of_the_repository_loads_and_is_named_in_snake_case() -> None:
    assert (sql_dir() / "schema.sql").is_file()
    assert "start_run" in QUERIES
    assert "bootstrap_schema" in QUERIES
    assert all(name.islower() for name in QUERIES)


def test_a_block_keeps_its_documenting_comments_and_stops_at_the_next_name() -> None:
    blocks = parse_queries(
        "-- file header\n\n-- name: one\n-- $1 int: x\nSELECT $1;\n-- name: two\nSELECT 2;\n",
        "f.sql",
    )
    assert blocks == {"one": "-- $1 int: x\nSELECT $1;\n", "two": "SELECT 2;\n"}


def test_a_duplicate_name_in_one_file_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"f\.sql:3: query 'a' is defined twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n", "f.sql")


def test_a_duplicate_name_across_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("-- name: same\nSELECT 1;\n")
    (tmp_path / "b.sql").write_text("-- name: same\nSELECT 2;\n")
    with pytest.raises(ValueError, match=r"b\.sql: query 'same' is already defined in a\.sql"):
        load_queries(tmp_path)


def test_a_block_with_only_comments_is_an_error() -> None:
    with pytest.raises(ValueError, match="query block 'empty' is empty"):
        parse_queries("-- name: empty\n-- nothing here\n\n-- name: b\nSELECT 1;\n", "f.sql")


def test_sql_before_the_first_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="SQL before the first"):
        parse_queries("SELECT 1;\n-- name: a\nSELECT 2;\n", "f.sql")


def test_an_unknown_query_name_says_where_it_looked() -> None:
    with pytest.raises(KeyError, match="no SQL query named 'nope'"):
        QUERIES["nope"]
