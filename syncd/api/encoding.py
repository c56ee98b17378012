"""Request parameters -> the `application/x-www-form-urlencoded` body Selzy expects (selzy-api.md
§3.2, §9). Pure: no I/O, no knowledge of methods or keys.

Arrays use PHP-style indexed keys: `field_names[0]=email`, `data[0][1]=Ann`; mappings use
`fields[Name]=Ann`; booleans are `1`/`0`; None values are left out; everything else is `str()`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TypeAlias
from urllib.parse import urlencode

# A parameter value: a scalar, or (nested) sequences / mappings of them.
FormValue: TypeAlias = (
    "str | int | float | bool | Sequence[FormValue] | Mapping[str, FormValue] | None"
)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def form_pairs(params: Mapping[str, FormValue]) -> list[tuple[str, str]]:
    """Flatten `params` into (key, value) pairs in a stable order (insertion, then index)."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        pairs.extend(_flatten(name, value))
    return pairs


def encode_form(params: Mapping[str, FormValue]) -> bytes:
    """The UTF-8 form body for `params` (brackets percent-encoded, spaces as `+`)."""
    return urlencode(form_pairs(params)).encode("utf-8")


def _flatten(key: str, value: FormValue) -> Iterator[tuple[str, str]]:
    if value is None:
        return
    if isinstance(value, bool):  # before int: bool is an int
        yield key, "1" if value else "0"
    elif isinstance(value, str | int | float):
        yield key, str(value)
    elif isinstance(value, Mapping):
        for sub_key, sub_value in value.items():
            yield from _flatten(f"{key}[{sub_key}]", sub_value)
    else:
        for index, item in enumerate(value):
            yield from _flatten(f"{key}[{index}]", item)
