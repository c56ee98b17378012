"""Selzy's JSON envelopes (§1.4/§1.5 of selzy-api.md) and the error a method raises to produce one.

API-level errors are always HTTP 200 with `{"error", "code", "result": ""}`; nothing here does I/O.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


class MethodError(Exception):
    """An API call failed in the Selzy sense; becomes an error envelope with `code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid_arg(message: str) -> MethodError:
    return MethodError("invalid_arg", message)


def not_found(address: str) -> MethodError:
    return MethodError("unspecified", f'Contact "{address}" not found')


def json_response(body: object, *, status: int = 200) -> web.Response:
    text = json.dumps(body, ensure_ascii=False)
    return web.Response(
        body=text.encode("utf-8"),
        status=status,
        headers={"Content-Type": JSON_CONTENT_TYPE},
    )


def success(result: Any, warnings: list[str] | None = None) -> web.Response:
    body: dict[str, Any] = {"result": result}
    if warnings:
        body["warnings"] = [{"warning": w} for w in warnings]
    return json_response(body)


def failure(code: str, message: str) -> web.Response:
    return json_response({"error": message, "code": code, "result": ""})
