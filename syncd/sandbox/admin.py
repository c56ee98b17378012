"""The admin API under /_sandbox/ (JSON, no auth): reset, contacts, lists, fields, seed, faults,
calls, settings, hooks and deliveries — for tests and for anyone checking their setup.
Contract: TEAM.md.

Bad input answers HTTP 400 `{"error": ...}`; nothing here applies the Selzy API rules.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from syncd.sandbox import backdoor, catalog, store
from syncd.sandbox.envelope import MethodError, json_response
from syncd.sandbox.faults import parse_fault
from syncd.sandbox.state import SANDBOX

routes = web.RouteTableDef()


def _bad(message: str) -> web.Response:
    return json_response({"error": message}, status=400)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(
            text='{"error": "body must be JSON"}', content_type="application/json"
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text='{"error": "body must be a JSON object"}', content_type="application/json"
        )
    return body


@routes.get("/_sandbox")
@routes.get("/_sandbox/")
async def info(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    counts = await sb.db.run(
        lambda conn: conn.execute(
            "SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM lists),"
            " (SELECT count(*) FROM fields)"
        ).fetchone()
    )
    return json_response(
        {
            "contacts": counts[0],
            "lists": counts[1],
            "fields": counts[2],
            "tasks": len(sb.engine.tasks),
            "hooks": len(sb.hooks.all()),
        }
    )


@routes.post("/_sandbox/reset")
async def reset(request: web.Request) -> web.Response:
    await request.app[SANDBOX].reset()
    return json_response({})


@routes.get("/_sandbox/contacts")
async def get_contacts(request: web.Request) -> web.Response:
    filters = {
        k: v for k, v in request.query.items() if k in ("list_id", "email", "phone", "limit")
    }
    try:
        contacts = await request.app[SANDBOX].db.run(
            lambda conn: backdoor.query_contacts(conn, filters)
        )
    except ValueError as exc:
        return _bad(str(exc))
    return json_response({"contacts": contacts})


@routes.post("/_sandbox/contacts")
async def post_contacts(request: web.Request) -> web.Response:
    body = await _body(request)
    specs = body.get("contacts")
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        return _bad("contacts must be a list of objects")

    sb = request.app[SANDBOX]
    events = sb.delivery.recorder()  # the person or admin changes things: webhooks fire

    def upsert(conn: Any) -> list[dict[str, Any]]:
        ids = [backdoor.upsert_contact(conn, spec, events) for spec in specs]
        return [store.contact_view(conn, i) for i in ids if i]

    try:
        contacts = await sb.db.transaction(upsert)
    except (ValueError, KeyError, TypeError) as exc:
        return _bad(str(exc))
    sb.delivery.publish(events.events)
    return json_response({"contacts": contacts})


@routes.get("/_sandbox/lists")
async def get_lists(request: web.Request) -> web.Response:
    return json_response({"lists": await request.app[SANDBOX].db.run(catalog.get_lists)})


@routes.post("/_sandbox/lists")
async def post_list(request: web.Request) -> web.Response:
    body = await _body(request)
    title, list_id = body.get("title"), body.get("id")
    if not isinstance(title, str) or (list_id is not None and not isinstance(list_id, int)):
        return _bad("title must be a string and id an integer")
    try:
        new_id = await request.app[SANDBOX].db.transaction(
            lambda conn: catalog.create_list(conn, title, list_id)
        )
    except MethodError as exc:
        return _bad(exc.message)
    return json_response({"id": new_id})


@routes.get("/_sandbox/fields")
async def get_fields(request: web.Request) -> web.Response:
    return json_response({"fields": await request.app[SANDBOX].db.run(catalog.get_fields)})


@routes.post("/_sandbox/fields")
async def post_field(request: web.Request) -> web.Response:
    body = await _body(request)
    name, type_ = body.get("name"), body.get("type", "string")
    if not isinstance(name, str) or not isinstance(type_, str):
        return _bad("name and type must be strings")
    try:
        field_id = await request.app[SANDBOX].db.transaction(
            lambda conn: catalog.create_field(conn, name, type_)
        )
    except MethodError as exc:
        return _bad(exc.message)
    return json_response({"id": field_id})


@routes.post("/_sandbox/seed")
async def seed(request: web.Request) -> web.Response:
    body = await _body(request)
    if "list_id" not in body:
        return _bad("list_id is required")
    started = time.monotonic()
    try:
        result = await request.app[SANDBOX].db.transaction(lambda conn: backdoor.seed(conn, body))
    except (ValueError, TypeError) as exc:
        return _bad(str(exc))
    return json_response({**result, "seconds": round(time.monotonic() - started, 3)})


@routes.post("/_sandbox/faults")
async def post_fault(request: web.Request) -> web.Response:
    try:
        fault = parse_fault(await _body(request))
    except ValueError as exc:
        return _bad(str(exc))
    request.app[SANDBOX].faults.add(fault)
    return json_response({"fault": fault.as_dict()})


@routes.get("/_sandbox/faults")
async def get_faults(request: web.Request) -> web.Response:
    return json_response({"faults": request.app[SANDBOX].faults.listing()})


@routes.delete("/_sandbox/faults")
async def delete_faults(request: web.Request) -> web.Response:
    request.app[SANDBOX].faults.clear()
    return json_response({})


@routes.get("/_sandbox/calls")
async def get_calls(request: web.Request) -> web.Response:
    method = request.query.get("method")
    return json_response({"calls": request.app[SANDBOX].calls.listing(method)})


@routes.delete("/_sandbox/calls")
async def delete_calls(request: web.Request) -> web.Response:
    request.app[SANDBOX].calls.clear()
    return json_response({})


@routes.get("/_sandbox/settings")
async def get_settings(request: web.Request) -> web.Response:
    settings = request.app[SANDBOX].settings
    return json_response({k: getattr(settings, k) for k in settings.__slots__})


@routes.post("/_sandbox/settings")
async def post_settings(request: web.Request) -> web.Response:
    settings = request.app[SANDBOX].settings
    bad = settings.update(await _body(request))
    if bad:
        return _bad(f"unknown settings or values of the wrong type: {', '.join(bad)}")
    return json_response({k: getattr(settings, k) for k in settings.__slots__})


@routes.get("/_sandbox/hooks")
async def get_hooks(request: web.Request) -> web.Response:
    return json_response({"hooks": [h.view() for h in request.app[SANDBOX].hooks.all()]})


@routes.get("/_sandbox/deliveries")
async def get_deliveries(request: web.Request) -> web.Response:
    hook_url = request.query.get("hook_url")
    return json_response({"deliveries": request.app[SANDBOX].delivery.log.listing(hook_url)})


@routes.delete("/_sandbox/deliveries")
async def delete_deliveries(request: web.Request) -> web.Response:
    request.app[SANDBOX].delivery.log.clear()
    return json_response({})


def add_routes(app: web.Application) -> None:
    app.router.add_routes(routes)
