"""Method `result` JSON -> the typed values of types.py, validating every field it reads.

Pure. Anything that does not have the documented shape raises ProtocolError naming the method
and the field, so a changed API fails loudly instead of syncing garbage. Extra fields are ignored
(Selzy documents that it may add some). Ids may arrive as JSON numbers or decimal strings.
"""

from __future__ import annotations

from collections.abc import Mapping

from syncd.api.types import (
    ContactInfo,
    ContactList,
    FieldInfo,
    HookInfo,
    ImportLogEntry,
    ImportResult,
    ListInfo,
    TaskResult,
)
from syncd.errors import ProtocolError


def parse_lists(result: object, *, method: str = "getLists") -> list[ListInfo]:
    return [
        ListInfo(
            id=_id(item, "id", method, f"result[{i}]"),
            title=_str(item, "title", method, f"result[{i}]"),
        )
        for i, item in enumerate(_objects(result, method))
    ]


def parse_fields(result: object, *, method: str = "getFields") -> list[FieldInfo]:
    return [
        FieldInfo(
            id=_id(item, "id", method, f"result[{i}]"),
            name=_str(item, "name", method, f"result[{i}]"),
            type=_str(item, "type", method, f"result[{i}]"),
        )
        for i, item in enumerate(_objects(result, method))
    ]


def parse_created_id(result: object, *, method: str) -> int:
    """`{"id": 123}` of createList / createField."""
    return _id(_object(result, method, "result"), "id", method, "result")


def parse_contact(result: object, *, method: str = "getContact") -> ContactInfo:
    top = _object(result, method, "result")
    email = _object(top.get("email"), method, "result.email")
    lists = top.get("lists", [])
    fields = top.get("fields", {})
    if fields is None or fields == []:  # PHP encodes an empty associative array as []
        fields = {}
    return ContactInfo(
        email=_str(email, "email", method, "result.email"),
        status=_str(email, "status", method, "result.email"),
        availability=_str(email, "availability", method, "result.email"),
        lists=tuple(
            ContactList(
                id=_id(item, "id", method, "result.lists[]"),
                status=_str(item, "status", method, "result.lists[]"),
            )
            for item in _objects(lists, method, "result.lists")
        ),
        fields={
            str(name): "" if value is None else str(value)
            for name, value in _object(fields, method, "result.fields").items()
        },
    )


def parse_hook(result: object, *, method: str = "setHook") -> HookInfo | None:
    """One handler (setHook's answer, a listHooks item); None when the answer is not one (the
    shape of setHook's answer is undocumented: §11.1)."""
    if not isinstance(result, dict) or not isinstance(result.get("hook_url"), str):
        return None
    status = result.get("status")
    events = result.get("events")
    return HookInfo(
        hook_url=result["hook_url"],
        status=status if isinstance(status, str) else "",
        events=(
            {str(name): str(rule) for name, rule in events.items()}
            if isinstance(events, dict)
            else {}
        ),
    )


def parse_hooks(result: object, *, method: str = "listHooks") -> list[HookInfo]:
    """listHooks: an array of handlers, each with at least `hook_url` (the documented gap:
    §11.1; this is the sandbox's shape, and what public receivers expect)."""
    hooks = []
    for i, item in enumerate(_objects(result, method)):
        hook = parse_hook(item, method=method)
        if hook is None:
            raise ProtocolError(
                f"{method}: result[{i}].hook_url is {_kind(item.get('hook_url'))}, not a string",
                method=method,
            )
        hooks.append(hook)
    return hooks


def parse_import(result: object, *, rows: int, method: str = "importContacts") -> ImportResult:
    """importContacts' result; every log `index` must point into the `rows` submitted."""
    top = _object(result, method, "result")
    entries = []
    for item in _objects(top.get("log", []), method, "result.log"):
        index = _int(item, "index", method, "result.log[]")
        if not 0 <= index < rows:
            raise ProtocolError(
                f"{method}: result.log index {index} is outside the {rows} rows sent", method=method
            )
        entries.append(
            ImportLogEntry(
                index=index,
                code=_str(item, "code", method, "result.log[]"),
                message=_str(item, "message", method, "result.log[]"),
            )
        )
    return ImportResult(
        total=_int(top, "total", method),
        inserted=_int(top, "inserted", method),
        updated=_int(top, "updated", method),
        deleted=_int(top, "deleted", method),
        new_emails=_int(top, "new_emails", method),
        invalid=_int(top, "invalid", method),
        log=tuple(entries),
    )


def parse_task(result: object, *, method: str) -> TaskResult:
    """async/exportContacts and async/getTaskResult: `task_uuid`, `status`, maybe more."""
    top = _object(result, method, "result")
    return TaskResult(
        task_uuid=_str(top, "task_uuid", method),
        status=_str(top, "status", method),
        task_type=_optional_str(top, "task_type", method),
        file_to_download=_optional_str(top, "file_to_download", method) or None,
    )


def _object(value: object, method: str, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{method}: {where} is {_kind(value)}, not an object", method=method)
    return value


def _objects(value: object, method: str, where: str = "result") -> list[Mapping[str, object]]:
    if not isinstance(value, list):
        raise ProtocolError(f"{method}: {where} is {_kind(value)}, not an array", method=method)
    return [_object(item, method, f"{where}[{i}]") for i, item in enumerate(value)]


def _int(obj: Mapping[str, object], key: str, method: str, where: str = "result") -> int:
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ProtocolError(
        f"{method}: {where}.{key} is {_kind(value)}, not a non-negative integer", method=method
    )


def _id(obj: Mapping[str, object], key: str, method: str, where: str) -> int:
    value = obj.get(key)
    if isinstance(value, str) and value.isdecimal() and value.isascii():
        return int(value)
    return _int(obj, key, method, where)


def _str(obj: Mapping[str, object], key: str, method: str, where: str = "result") -> str:
    value = obj.get(key)
    if isinstance(value, str):
        return value
    raise ProtocolError(f"{method}: {where}.{key} is {_kind(value)}, not a string", method=method)


def _optional_str(obj: Mapping[str, object], key: str, method: str) -> str | None:
    return None if obj.get(key) is None else _str(obj, key, method)


def _kind(value: object) -> str:
    """A JSON type name for messages; never the value itself (it could be anything)."""
    if value is None:
        return "missing or null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names |= {list: "an array", dict: "an object"}
    return names.get(type(value), type(value).__name__)
