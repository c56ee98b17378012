"""SQL templates: the statements that must name something only known at run time (the user's
table and columns, a staging table, the demo database), as named blocks of `sql/templates/*.sql`.

Owns the template format and the one renderer. A placeholder can only be filled with an `Ident`
(quoted by syncd.db.source.quote_ident, the audited quoter) or a `Fragment` (another rendered
block); there is no way to put a plain string, so no data, into SQL here: values are always
`$1..$n` bind parameters. It must not execute anything.

A template block is a query block (syncd.db.sql) whose comment lines also declare each
placeholder, once, with its kind:

    -- name: local_text_column
    -- {{column}} ident: a column of the user's table, qualified by its alias
    {{column}}::text

The kinds are `ident` (an Ident) and `fragment` (a Fragment: render() or join()). The comment
lines are dropped from the rendered text, so a name never lands inside a comment. A block is
refused at load time when it uses an undeclared placeholder or declares an unused one, or when
a placeholder could land inside a string literal, a quoted identifier or a comment: no `/*`,
trailing `--`, dollar quoting or backslash in a template's SQL, and quotes must balance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

from syncd.db.source import quote_ident
from syncd.db.sql import load_queries, sql_dir

Kind = Literal["ident", "fragment"]

_PLACEHOLDER = re.compile(r"\{\{(?P<name>[a-z_][a-z0-9_]*)\}\}")
_DECLARATION = re.compile(r"^--\s*\{\{(?P<name>[a-z_][a-z0-9_]*)\}\}\s+(?P<kind>\w+)\b")
_KINDS: frozenset[str] = frozenset({"ident", "fragment"})
# Constructs in which a placeholder's text would not be plain SQL tokens.
_FORBIDDEN = (
    ("/*", "a block comment"),
    ("--", "a trailing comment"),
    ("\\", "a backslash (E'' strings)"),
)
_DOLLAR_QUOTE = re.compile(r"\$(?!\d)")  # `$1` is a parameter; `$$` / `$tag$` open a string
_MINT = object()  # only this module makes Fragments


@dataclass(frozen=True, slots=True)
class Ident:
    """A (possibly qualified) identifier: `Ident("src", "e-mail")` renders `"src"."e-mail"`.

    Each part passes through quote_ident when the Ident is made, so a bad name (empty, NUL,
    longer than 63 bytes) fails here, and a hostile one is only ever a quoted name.
    """

    parts: tuple[str, ...]

    def __init__(self, *parts: str) -> None:
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"an identifier has 1 to 3 parts, got {len(parts)}")
        for part in parts:
            if not isinstance(part, str):
                raise TypeError(f"an identifier part must be a str, got {type(part).__name__}")
            quote_ident(part)
        object.__setattr__(self, "parts", parts)

    @property
    def sql(self) -> str:
        return ".".join(quote_ident(part) for part in self.parts)


@dataclass(frozen=True, slots=True)
class Fragment:
    """SQL text made only of template blocks and quoted identifiers.

    Made by render() and join() only: constructing one directly raises TypeError.
    """

    sql: str
    _mint: object = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._mint is not _MINT:
            raise TypeError("a Fragment comes from render() or join(), never from a string")


@dataclass(frozen=True, slots=True)
class Template:
    """One loaded block: its SQL split at the placeholders, and their declared kinds."""

    name: str
    pieces: tuple[str, ...]  # literal SQL; placeholder i sits between pieces i and i + 1
    slots: tuple[str, ...]  # the placeholder names, in order of appearance (may repeat)
    kinds: Mapping[str, Kind]


def _check_sql(code: str, where: str) -> None:
    for token, what in _FORBIDDEN:
        if token in code:
            raise ValueError(f"{where}: {what} is not allowed in a template's SQL")
    if _DOLLAR_QUOTE.search(code):
        raise ValueError(f"{where}: dollar quoting is not allowed in a template's SQL")
    for quote in ("'", '"'):
        if code.count(quote) % 2:
            raise ValueError(f"{where}: unbalanced {quote} in a template's SQL")


def _parse_template(name: str, block: str, source: str) -> Template:
    """A query block as a Template; ValueError for any of the mistakes the module lists."""
    where = f"{source}: template {name!r}"
    kinds: dict[str, Kind] = {}
    code_lines: list[str] = []
    for line in block.splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            if stripped:
                code_lines.append(line.rstrip())
            continue
        declared = _DECLARATION.match(stripped)
        if declared is None:
            continue
        placeholder, kind = declared["name"], declared["kind"]
        if kind not in _KINDS:
            raise ValueError(f"{where}: {{{{{placeholder}}}}} has unknown kind {kind!r}")
        if placeholder in kinds:
            raise ValueError(f"{where}: {{{{{placeholder}}}}} is declared twice")
        kinds[placeholder] = "ident" if kind == "ident" else "fragment"
    code = "\n".join(code_lines)
    _check_sql(code, where)
    pieces: list[str] = []
    slots: list[str] = []
    position = 0
    for match in _PLACEHOLDER.finditer(code):
        before = code[position : match.start()]
        pieces.append(before)
        slots.append(match["name"])
        position = match.end()
        prefix = code[: match.start()]
        if prefix.count("'") % 2 or prefix.count('"') % 2:
            raise ValueError(f"{where}: {match[0]} is inside a string literal or quoted name")
    pieces.append(code[position:])
    leftover = next((p for p in pieces if "{{" in p or "}}" in p), None)
    if leftover is not None:
        raise ValueError(f"{where}: malformed placeholder near {leftover.strip()[:40]!r}")
    undeclared = sorted(set(slots) - kinds.keys())
    if undeclared:
        raise ValueError(f"{where}: placeholder(s) {', '.join(undeclared)} are not declared")
    unused = sorted(kinds.keys() - set(slots))
    if unused:
        raise ValueError(f"{where}: declared placeholder(s) {', '.join(unused)} are not used")
    return Template(name, tuple(pieces), tuple(slots), kinds)


def load_templates(directory: Path | None = None) -> dict[str, Template]:
    """Every block of every `*.sql` file in `directory` (default: sql_dir()/templates), checked;
    ValueError for a block the module docstring refuses."""
    directory = directory if directory is not None else sql_dir() / "templates"
    return {
        name: _parse_template(name, block, str(directory))
        for name, block in load_queries(directory).items()
    }


@cache
def templates() -> Mapping[str, Template]:
    """The templates render() fills: sql/templates, read and checked once per process."""
    return load_templates()


def _sql_of(template: str, placeholder: str, kind: Kind, value: object) -> str:
    if kind == "ident" and isinstance(value, Ident):
        return value.sql
    if kind == "fragment" and isinstance(value, Fragment):
        return value.sql
    wanted = "an Ident" if kind == "ident" else "a Fragment"
    raise TypeError(
        f"template {template!r}: {{{{{placeholder}}}}} takes {wanted}, got {type(value).__name__}"
    )


def render(name: str, /, **values: Ident | Fragment) -> Fragment:
    """Template `name` with every placeholder filled: each declared placeholder exactly once by
    keyword, an Ident for an `ident` one, a Fragment for a `fragment` one.

    KeyError for an unknown template, ValueError for a missing or unknown placeholder,
    TypeError for a value of the wrong kind (a str above all).
    """
    try:
        template = templates()[name]
    except KeyError:
        raise KeyError(f"no SQL template named {name!r} in {sql_dir() / 'templates'}") from None
    missing = sorted(template.kinds.keys() - values.keys())
    unknown = sorted(values.keys() - template.kinds.keys())
    if missing or unknown:
        problems = [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"unknown {', '.join(unknown)}"] if unknown else []
        raise ValueError(f"template {name!r}: placeholder(s) {'; '.join(problems)}")
    text = {
        placeholder: _sql_of(name, placeholder, kind, values[placeholder])
        for placeholder, kind in template.kinds.items()
    }
    parts = [template.pieces[0]]
    for slot, piece in zip(template.slots, template.pieces[1:], strict=True):
        parts += [text[slot], piece]
    return Fragment("".join(parts), _MINT)


def join(items: Iterable[Ident | Fragment]) -> Fragment:
    """Identifiers and fragments separated by `, ` (a column list, an ARRAY's elements)."""
    texts = []
    for item in items:
        if not isinstance(item, Ident | Fragment):
            raise TypeError(f"join() takes Idents and Fragments, got {type(item).__name__}")
        texts.append(item.sql)
    return Fragment(", ".join(texts), _MINT)
