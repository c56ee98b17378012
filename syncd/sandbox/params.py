"""Turns an HTTP request into Selzy call parameters the way real clients send them (§9.1).

Owns body decoding (form, multipart, bzip2, gzip), the bracket-key tree (`a[]`, `a[N]`, `a[N][M]`,
`a[key]`) and typed accessors. It knows nothing about methods or storage.
"""

from __future__ import annotations

import bz2
import gzip
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from syncd.sandbox.envelope import invalid_arg

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
_TRUE = {"1", "true", "True", "TRUE", "yes", "on"}
_FALSE = {"0", "false", "False", "FALSE", "no", "off", ""}

_FORM_TYPES = ("application/x-www-form-urlencoded", "application/octet-stream", "")

Tree = dict[str, Any]


async def read_pairs(request: web.Request) -> list[tuple[str, str]]:
    """Query pairs then body pairs; a body parameter replaces every query pair of the same name."""
    query = [(k, v) for k, v in request.query.items()]
    body = await _body_pairs(
        request, compressed=request.query.get("request_compression") == "bzip2"
    )
    body_names = {_base(k) for k, _ in body}
    return [p for p in query if _base(p[0]) not in body_names] + body


async def _body_pairs(request: web.Request, *, compressed: bool) -> list[tuple[str, str]]:
    content_type = request.content_type
    if content_type == "multipart/form-data" and not compressed:
        form = await request.post()
        return [(k, _form_value(v)) for k, v in form.items()]
    raw = await request.read()
    if not raw:
        return []
    if raw[:2] == b"\x1f\x8b":  # gzip that the server did not undo (no Content-Encoding header)
        raw = _safe(gzip.decompress, raw)
    if compressed or raw[:3] == b"BZh":
        raw = _safe(bz2.decompress, raw)
    if not compressed and content_type not in _FORM_TYPES:
        return []  # JSON or garbage bodies are ignored; the query still counts (§9.1.3)
    text = raw.decode("utf-8", errors="replace")
    return parse_qsl(text, keep_blank_values=True)


def _form_value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    file = getattr(value, "file", None)  # an uploaded part: read it as text
    return file.read().decode("utf-8", errors="replace") if file is not None else ""


def _safe(decompress: Any, raw: bytes) -> bytes:
    try:
        data: bytes = decompress(raw)
    except (OSError, ValueError, EOFError) as exc:
        raise invalid_arg("Request body could not be decompressed") from exc
    return data


def _base(key: str) -> str:
    return key.split("[", 1)[0]


def build_tree(pairs: Iterable[tuple[str, str]]) -> Tree:
    """Nest bracketed keys; integer-keyed maps become lists (gaps filled with "")."""
    root: Tree = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            continue
        path = [match.group(1), *_SEGMENT.findall(match.group(2))]
        node = root
        for i, segment in enumerate(path):
            name = str(_next_index(node)) if segment == "" else segment
            if i == len(path) - 1:
                node[name] = value
            else:
                child = node.get(name)
                if not isinstance(child, dict):
                    child = {}
                    node[name] = child
                node = child
    return {k: _finish(v) if isinstance(v, dict) else v for k, v in root.items()}


def _next_index(node: Tree) -> int:
    indices = [int(k) for k in node if k.isdigit()]
    return max(indices) + 1 if indices else 0


def _finish(node: Tree) -> Any:  # a list when every key is an index, else a dict
    items = {k: _finish(v) if isinstance(v, dict) else v for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        size = max(int(k) for k in items) + 1
        if size > 100_000:
            raise invalid_arg("Array index too large")
        out: list[Any] = [""] * size
        for k, v in items.items():
            out[int(k)] = v
        return out
    return items


class Params:
    """Typed access to one call's parameters. Errors are `invalid_arg` envelopes."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree

    def has(self, name: str) -> bool:
        return name in self.tree

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.tree.get(name)
        if value is None:
            if required:
                raise invalid_arg(f"Argument {name!r} is required")
            return default if default is not None else ""
        if not isinstance(value, str):
            raise invalid_arg(f"Argument {name!r} must be a string")
        return value

    def integer(
        self, name: str, default: int | None = None, *, required: bool = False
    ) -> int | None:
        text = self.text(name, required=required).strip()
        if text == "":
            return default
        try:
            return int(text)
        except ValueError:
            raise invalid_arg(f"Argument {name!r} must be an integer") from None

    def flag(self, name: str) -> bool:
        text = self.text(name).strip()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise invalid_arg(f"Argument {name!r} must be 0 or 1")

    def strings(self, name: str) -> list[str]:
        """An array parameter (`a[]`/`a[N]`) or a comma-separated string."""
        value = self.tree.get(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [v for v in value if v != ""]
        raise invalid_arg(f"Argument {name!r} must be an array of strings")

    def ids(self, name: str) -> list[int]:
        return parse_ids(",".join(self.strings(name)), name)

    def rows(self, name: str, *, required: bool = False) -> list[list[str]]:
        value = self.tree.get(name)
        if value is None:
            if required:
                raise invalid_arg(f"Argument {name!r} is required")
            return []
        if not isinstance(value, list):
            raise invalid_arg(f"Argument {name!r} must be a two-dimensional array")
        rows: list[list[str]] = []
        for row in value:
            if row == "":
                rows.append([])
            elif isinstance(row, list) and all(isinstance(c, str) for c in row):
                rows.append(row)
            else:
                raise invalid_arg(f"Argument {name!r} must be a two-dimensional array")
        return rows

    def mapping(self, name: str) -> dict[str, str]:
        value = self.tree.get(name)
        if value is None:
            return {}
        if isinstance(value, list):  # `fields[0]=...` is a map with digit keys
            value = {str(i): v for i, v in enumerate(value) if v != ""}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise invalid_arg(f"Argument {name!r} must be an associative array")
        return dict(value)

    def public(self) -> Tree:
        """The parameters without the API key, for the calls log."""
        return {k: v for k, v in self.tree.items() if k != "api_key"}


def parse_ids(text: str, name: str) -> list[int]:
    ids: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit():
            raise invalid_arg(f"Argument {name!r} must be comma-separated list ids, got {part!r}")
        ids.append(int(part))
    return ids
