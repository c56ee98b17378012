"""The SQL file loader: every `sql/queries/*.sql` is read once into named blocks (`-- name: foo`).

Owns finding the `sql/` directory (inside an installed wheel as `syncd/_sql`, in a checkout at
`<repo>/sql`) and the block format; it must not execute anything or build SQL.

A block starts at a `-- name: <identifier>` line and runs to the next one. The comment lines right
after the name document the block and its `$1..$n` parameters; they are kept in the text (the
server ignores them and they make `pg_stat_statements` readable). Text before the first name in a
file may only be comments: a file header.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path

_NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>\S+)\s*$")
_VALID_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@cache
def sql_dir() -> Path:
    """The directory holding schema.sql, migrations/ and queries/.

    An installed wheel carries it as `syncd/_sql` (pyproject force-include); a source checkout
    (editable install, tests) has it at the top of the repository.
    """
    package = Path(__file__).resolve().parent.parent
    candidates = (package / "_sql", package.parent / "sql")
    for candidate in candidates:
        if (candidate / "queries").is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"syncd's SQL directory is missing (looked in {tried})")


def _is_code(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("--")


def parse_queries(text: str, source: str) -> dict[str, str]:
    """Split one file's text into {name: block}; `source` names the file in error messages.

    Raises ValueError for a bad or duplicate name, an empty block, or SQL before the first name.
    """
    blocks: dict[str, str] = {}
    name: str | None = None
    start = 0
    body: list[str] = []

    def close() -> None:
        if name is None:
            return
        if not any(_is_code(line) for line in body):
            raise ValueError(f"{source}:{start}: query block {name!r} is empty")
        blocks[name] = "\n".join(body).strip() + "\n"

    for number, line in enumerate(text.splitlines(), start=1):
        match = _NAME_LINE.match(line)
        if match is None:
            if name is None and _is_code(line):
                raise ValueError(f"{source}:{number}: SQL before the first `-- name:` line")
            body.append(line)
            continue
        close()
        name, start, body = match["name"], number, []
        if not _VALID_NAME.match(name):
            raise ValueError(f"{source}:{number}: bad query name {name!r} (use snake_case)")
        if name in blocks:
            raise ValueError(f"{source}:{number}: query {name!r} is defined twice")
    close()
    return blocks


def load_queries(directory: Path | None = None) -> dict[str, str]:
    """Every named block of every `*.sql` file in `directory` (default: sql_dir()/queries).

    Names are global across files: a name defined in two files is an error.
    """
    directory = directory if directory is not None else sql_dir() / "queries"
    queries: dict[str, str] = {}
    origin: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        for name, block in parse_queries(path.read_text(encoding="utf-8"), path.name).items():
            if name in queries:
                raise ValueError(
                    f"{path.name}: query {name!r} is already defined in {origin[name]}"
                )
            queries[name] = block
            origin[name] = path.name
    return queries


class _Queries(Mapping[str, str]):
    """The loaded blocks; the files are read on first use, once per process."""

    _loaded: dict[str, str] | None = None

    def _blocks(self) -> dict[str, str]:
        if self._loaded is None:
            self._loaded = load_queries()
        return self._loaded

    def __getitem__(self, name: str) -> str:
        try:
            return self._blocks()[name]
        except KeyError:
            raise KeyError(f"no SQL query named {name!r} in {sql_dir() / 'queries'}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._blocks())

    def __len__(self) -> int:
        return len(self._blocks())


QUERIES: Mapping[str, str] = _Queries()
