"""The API method table: Selzy method name -> coroutine(sandbox, params, request) -> result.

Each entry validates through Params, runs its storage work on the writer thread and returns the
`result` value; errors are MethodError. Routing, auth, faults and limits happen in app.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from syncd.sandbox import catalog, contacts, exports, hooks
from syncd.sandbox.envelope import MethodError, invalid_arg
from syncd.sandbox.importing import import_contacts
from syncd.sandbox.params import Params
from syncd.sandbox.state import CALLER_KEY, NEVER_FINISHES, Sandbox

Handler = Callable[[Sandbox, Params, web.Request], Awaitable[Any]]
FILES_PATH = "/_sandbox/files"


async def get_lists(sb: Sandbox, params: Params, request: web.Request) -> Any:
    return await sb.db.run(catalog.get_lists)


async def create_list(sb: Sandbox, params: Params, request: web.Request) -> Any:
    title = params.text("title", required=True)
    return {"id": await sb.db.transaction(lambda conn: catalog.create_list(conn, title))}


async def update_list(sb: Sandbox, params: Params, request: web.Request) -> Any:
    return await sb.db.transaction(lambda conn: catalog.update_list(conn, params))


async def delete_list(sb: Sandbox, params: Params, request: web.Request) -> Any:
    return await sb.db.transaction(lambda conn: catalog.delete_list(conn, params))


async def get_fields(sb: Sandbox, params: Params, request: web.Request) -> Any:
    return await sb.db.run(catalog.get_fields)


async def create_field(sb: Sandbox, params: Params, request: web.Request) -> Any:
    name = params.text("name", required=True).strip()
    type_ = params.text("type", required=True).strip()
    public_name = params.text("public_name").strip()
    field_id = await sb.db.transaction(
        lambda conn: catalog.create_field(conn, name, type_, public_name)
    )
    return {"id": field_id}


async def import_contacts_(sb: Sandbox, params: Params, request: web.Request) -> Any:
    names = [n.strip() for n in params.strings("field_names")]
    rows = params.rows("data", required=True)
    overwrite_tags = params.flag("overwrite_tags")
    overwrite_lists = params.flag("overwrite_lists")
    events = sb.delivery.recorder()
    result = await sb.db.transaction(
        lambda conn: import_contacts(
            conn,
            names,
            rows,
            overwrite_tags=overwrite_tags,
            overwrite_lists=overwrite_lists,
            events=events,
        )
    )
    sb.delivery.publish(events.events)
    return dataclasses.asdict(result)


async def export_async(sb: Sandbox, params: Params, request: web.Request) -> Any:
    if not sb.export_limiter.allow(request[CALLER_KEY], sb.settings.export_rate_limit_per_minute):
        raise MethodError(
            "api_call_limit_exceeded_for_api_key",
            "API call limit exceeded for async/exportContacts on this API key, retry later",
        )
    await sb.engine.purge_expired()
    query = await sb.db.run(lambda conn: exports.plan_query(conn, params))
    notify_url = params.text("notify_url").strip() or None
    task = sb.engine.start(
        query,
        file_url=f"{request.scheme}://{request.host}{FILES_PATH}",
        notify_url=notify_url,
        never_finishes=request.get(NEVER_FINISHES, False),
    )
    return {"task_uuid": task.task_uuid, "status": "new"}


async def get_task_result(sb: Sandbox, params: Params, request: web.Request) -> Any:
    task_uuid = params.text("task_uuid", required=True).strip()
    task = sb.engine.tasks.get(task_uuid)
    if task is None:
        raise invalid_arg(f'Task "{task_uuid}" not found')
    return task.result()


async def export_sync(sb: Sandbox, params: Params, request: web.Request) -> Any:
    return await sb.db.run(lambda conn: exports.legacy_export(conn, params))


async def subscribe(sb: Sandbox, params: Params, request: web.Request) -> Any:
    events = sb.delivery.recorder()
    result = await sb.db.transaction(lambda conn: contacts.subscribe(conn, params, events))
    sb.delivery.publish(events.events)
    return result


async def exclude(sb: Sandbox, params: Params, request: web.Request) -> Any:
    return await sb.db.transaction(lambda conn: contacts.exclude(conn, params, unsubscribe=False))


async def unsubscribe(sb: Sandbox, params: Params, request: web.Request) -> Any:
    events = sb.delivery.recorder()
    result = await sb.db.transaction(
        lambda conn: contacts.exclude(conn, params, unsubscribe=True, events=events)
    )
    sb.delivery.publish(events.events)
    return result


async def get_contact(sb: Sandbox, params: Params, request: web.Request) -> Any:
    return await sb.db.run(lambda conn: contacts.get_contact(conn, params))


async def is_contact_in_lists(sb: Sandbox, params: Params, request: web.Request) -> Any:
    return await sb.db.run(lambda conn: contacts.is_in_lists(conn, params))


async def get_contact_count(sb: Sandbox, params: Params, request: web.Request) -> Any:
    return await sb.db.run(lambda conn: contacts.contact_count(conn, params))


async def get_total_contacts_count(sb: Sandbox, params: Params, request: web.Request) -> Any:
    return await sb.db.run(lambda conn: contacts.total_count(conn, params))


async def set_hook(sb: Sandbox, params: Params, request: web.Request) -> Any:
    """Register or replace the handler for hook_url; answers the handler as listHooks shows it."""
    spec = hooks.parse_spec(params)
    await sb.delivery.check_url(spec.url)
    return sb.hooks.set(spec, request[CALLER_KEY]).view()


async def list_hooks(sb: Sandbox, params: Params, request: web.Request) -> Any:
    return [hook.view() for hook in sb.hooks.all()]


async def remove_hook(sb: Sandbox, params: Params, request: web.Request) -> Any:
    url = params.text("hook_url", required=True).strip()
    if sb.hooks.remove(url) is None:
        raise invalid_arg(f'Hook "{url}" not found')
    return {}


METHODS: dict[str, Handler] = {
    "getLists": get_lists,
    "createList": create_list,
    "updateList": update_list,
    "deleteList": delete_list,
    "getFields": get_fields,
    "createField": create_field,
    "importContacts": import_contacts_,
    "async/exportContacts": export_async,
    "async/getTaskResult": get_task_result,
    "exportContacts": export_sync,
    "subscribe": subscribe,
    "exclude": exclude,
    "unsubscribe": unsubscribe,
    "getContact": get_contact,
    "isContactInLists": is_contact_in_lists,
    "getContactCount": get_contact_count,
    "getTotalContactsCount": get_total_contacts_count,
    "setHook": set_hook,
    "listHooks": list_hooks,
    "removeHook": remove_hook,
}
