"""The form encoding of selzy-api.md §3.2 / §9: indexed arrays, 2-D data, bools as 1/0."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from syncd.api.encoding import FormValue, encode_form, form_pairs


def test_import_arrays_use_indexed_keys_row_then_column() -> None:
    pairs = form_pairs(
        {
            "field_names": ["email", "Name"],
            "data": [["a@x.org", "Ann"], ["b@x.org", "Bob"]],
        }
    )
    assert pairs == [
        ("field_names[0]", "email"),
        ("field_names[1]", "Name"),
        ("data[0][0]", "a@x.org"),
        ("data[0][1]", "Ann"),
        ("data[1][0]", "b@x.org"),
        ("data[1][1]", "Bob"),
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, [("flag", "1")]),
        (False, [("flag", "0")]),
        (7, [("flag", "7")]),
        (1.5, [("flag", "1.5")]),
        ("text", [("flag", "text")]),
        (None, []),
        ({"Name": "Ann", "Age": 3}, [("flag[Name]", "Ann"), ("flag[Age]", "3")]),
        ([], []),
    ],
)
def test_scalars_mappings_and_none(value: FormValue, expected: list[tuple[str, str]]) -> None:
    assert form_pairs({"flag": value}) == expected


def test_body_round_trips_unicode_and_reserved_characters() -> None:
    params: dict[str, FormValue] = {
        "api_key": "k&y=1",
        "data": [["ünï cødé", "a+b c,d"]],
    }
    body = encode_form(params)
    assert b"%5B0%5D%5B1%5D" in body  # brackets percent-encoded as most clients do
    assert parse_qsl(body.decode("ascii"), keep_blank_values=True) == [
        ("api_key", "k&y=1"),
        ("data[0][0]", "ünï cødé"),
        ("data[0][1]", "a+b c,d"),
    ]


def test_empty_cells_are_sent_not_dropped() -> None:
    assert form_pairs({"data": [["a@x.org", ""]]}) == [
        ("data[0][0]", "a@x.org"),
        ("data[0][1]", ""),
    ]
