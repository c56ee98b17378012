"""The SQL template renderer: only quoted identifiers and other rendered blocks fill a
placeholder, and a template that could let a name escape its quotes is refused at load time."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.db.source import quote_ident
from syncd.db.templates import (
    Fragment,
    Ident,
    join,
    load_templates,
    render,
    templates,
)


def test_an_identifier_renders_each_part_quoted_with_its_quotes_doubled() -> None:
    assert Ident("src", 'e-mail"; --').sql == '"src"."e-mail""; --"'
    assert Ident('we"ird', "t").sql == quote_ident('we"ird') + "." + quote_ident("t")


@pytest.mark.parametrize(
    ("parts", "error"),
    [
        ((), ValueError),
        (("a", "b", "c", "d"), ValueError),
        (("",), ValueError),
        (("a\x00b",), ValueError),
        (("x" * 64,), ValueError),
        ((1,), TypeError),
    ],
)
def test_a_bad_identifier_fails_when_it_is_made(parts: tuple[object, ...], error: type) -> None:
    with pytest.raises(error):
        Ident(*parts)  # type: ignore[arg-type]


def test_a_plain_string_cannot_fill_a_placeholder() -> None:
    """Data (any str, even one that looks like a column) never reaches SQL through render()."""
    with pytest.raises(TypeError, match=r"\{\{column\}\} takes an Ident, got str"):
        render("local_text_column", column="src.email")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"\{\{value\}\} takes a Fragment, got str"):
        render("local_email_key", value="'; DROP TABLE x; --")  # type: ignore[arg-type]


def test_a_fragment_cannot_be_made_from_a_string() -> None:
    with pytest.raises(TypeError, match="never from a string"):
        Fragment("1; DROP TABLE x")
    with pytest.raises(TypeError, match="never from a string"):
        Fragment("1; DROP TABLE x", object())


def test_a_placeholder_takes_only_its_declared_kind() -> None:
    with pytest.raises(TypeError, match="takes a Fragment, got Ident"):
        render("local_email_key", value=Ident("src", "email"))
    with pytest.raises(TypeError, match="takes an Ident, got Fragment"):
        render("local_text_column", column=render("local_no_writeback"))


def test_a_missing_or_unknown_placeholder_fails() -> None:
    with pytest.raises(ValueError, match=r"placeholder.*missing value"):
        render("local_assignment", column=Ident("st"))
    with pytest.raises(ValueError, match=r"placeholder.*unknown extra"):
        render("local_no_opt_out", extra=Ident("x"))


def test_an_unknown_template_fails_naming_where_it_looked() -> None:
    with pytest.raises(KeyError, match="no SQL template named 'nope'"):
        render("nope")


def test_join_separates_with_commas_and_refuses_strings() -> None:
    joined = join([Ident("p", "key"), render("local_no_writeback")])
    assert joined.sql == '"p"."key", NULL::text'
    assert join([]).sql == ""
    with pytest.raises(TypeError, match="got str"):
        join([Ident("a"), "b"])  # type: ignore[list-item]


def test_a_rendered_block_holds_its_sql_without_its_documenting_comments() -> None:
    sql = render("local_text_column", column=Ident("src", "e-mail")).sql
    assert sql == '"src"."e-mail"::text'


def _values_of_declared_kinds(name: str) -> dict[str, Ident | Fragment]:
    stand_in = render("local_no_writeback")
    return {
        placeholder: Ident("x") if kind == "ident" else stand_in
        for placeholder, kind in templates()[name].kinds.items()
    }


@pytest.mark.parametrize("name", sorted(templates()))
def test_every_template_block_renders_with_values_of_its_declared_kinds(name: str) -> None:
    sql = render(name, **_values_of_declared_kinds(name)).sql
    assert sql.strip()
    assert "{{" not in sql
    assert "--" not in sql


def _load(tmp_path: Path, text: str) -> None:
    (tmp_path / "t.sql").write_text(text)
    load_templates(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-- name: t\nSELECT {{a}}\n", "placeholder.* a are not declared"),
        ("-- name: t\n-- {{a}} ident: x\nSELECT 1\n", "declared placeholder.* a are not used"),
        ("-- name: t\n-- {{a}} ident: x\n-- {{a}} ident: y\nSELECT {{a}}\n", "declared twice"),
        ("-- name: t\n-- {{a}} text: x\nSELECT {{a}}\n", "unknown kind 'text'"),
        ("-- name: t\n-- {{a}} ident: x\nSELECT '{{a}}'\n", "inside a string literal"),
        ('-- name: t\n-- {{a}} ident: x\nSELECT "c{{a}}"\n', "inside a string literal"),
        ("-- name: t\n-- {{a}} ident: x\nSELECT /* {{a}} */ 1\n", "block comment"),
        ("-- name: t\n-- {{a}} ident: x\nSELECT {{a}} -- {{a}}\n", "trailing comment"),
        ("-- name: t\n-- {{a}} ident: x\nSELECT $$ {{a}} $$\n", "dollar quoting"),
        ("-- name: t\n-- {{a}} ident: x\nSELECT $q$ {{a}} $q$\n", "dollar quoting"),
        ("-- name: t\n-- {{a}} ident: x\nSELECT E'\\'' || {{a}}\n", "backslash"),
        ("-- name: t\nSELECT 'x\n", "unbalanced '"),
        ("-- name: t\n-- {{a}} ident: x\nSELECT {{a}}, {{ a }}\n", "malformed placeholder"),
        ("-- name: t\n-- {{a}} ident: x\nSELECT {{a}}, {{A}}\n", "malformed placeholder"),
    ],
)
def test_a_template_that_could_let_a_name_escape_is_refused_at_load(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _load(tmp_path, text)


def test_a_template_may_repeat_a_placeholder_and_mention_it_in_comments(tmp_path: Path) -> None:
    (tmp_path / "t.sql").write_text(
        "-- name: t\n-- {{a}} ident: a column\n-- compares {{a}} with itself\n"
        "SELECT {{a}} = {{a}}\n"
    )
    template = load_templates(tmp_path)["t"]
    assert template.slots == ("a", "a")
    assert template.pieces == ("SELECT ", " = ", "")
