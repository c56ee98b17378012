"""The aiohttp application: routes, the per-call pipeline and serve().

Pipeline of an API call: parse parameters -> record in the calls log -> injected fault -> API key
-> rate limit -> method. Errors are Selzy envelopes with HTTP 200; this module owns the order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import structlog
from aiohttp import web

from syncd.sandbox import admin
from syncd.sandbox.envelope import MethodError, failure, success
from syncd.sandbox.faultplay import drop, play
from syncd.sandbox.files import download
from syncd.sandbox.methods import FILES_PATH, METHODS
from syncd.sandbox.options import SandboxOptions
from syncd.sandbox.params import Params, build_tree, read_pairs
from syncd.sandbox.state import CALLER_KEY, SANDBOX, Sandbox

log = structlog.get_logger(__name__)

MAX_BODY = 64 * 1024 * 1024
SHUTDOWN_TIMEOUT = 1.0  # seconds to let in-flight requests finish on stop


async def handle_api(request: web.Request) -> web.StreamResponse:
    sb = request.app[SANDBOX]
    method = request.match_info["method"]
    try:
        params = Params(build_tree(await read_pairs(request)))
    except MethodError as exc:
        sb.calls.record(method, {})
        return failure(exc.code, exc.message)
    data = params.tree.get("data")
    sb.calls.record(method, params.public(), len(data) if isinstance(data, list) else None)
    fault = sb.faults.take(method)
    if fault is not None and fault.kind != "drop_after":
        replaced = await play(request, fault, sb.closing)
        if replaced is not None:
            return replaced
    key = params.tree.get("api_key")
    if not isinstance(key, str) or key not in sb.options.api_keys:
        return failure("invalid_api_key", "Invalid API key")
    request[CALLER_KEY] = key
    if not sb.limiter.allow(key, sb.settings.rate_limit_per_minute):
        return failure(
            "api_call_limit_exceeded_for_api_key",
            "API call limit exceeded for this API key, retry in a minute",
        )
    handler = METHODS.get(method)
    if handler is None:
        return failure("unknown_method", f'Unknown method "{method}"')
    try:
        result = await handler(sb, params, request)
    except MethodError as exc:
        return failure(exc.code, exc.message)
    if fault is not None and fault.kind == "drop_after":
        return drop(request)  # applied, but the answer is lost on the way back
    return success(result)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    sb = app[SANDBOX]
    await sb.db.open()
    sb.engine.session = aiohttp.ClientSession()
    sb.delivery.start(sb.engine.session)
    log.info("sandbox_started", database=str(sb.db.path), persistent=sb.db.durable)
    try:
        yield
    finally:
        await sb.delivery.aclose()
        await sb.engine.aclose()
        await sb.engine.session.close()
        await sb.db.close()


async def _on_shutdown(app: web.Application) -> None:
    app[SANDBOX].closing.set()


def build_app(options: SandboxOptions) -> web.Application:
    """A fresh sandbox application (its state lives as long as the application)."""
    app = web.Application(client_max_size=MAX_BODY)
    app[SANDBOX] = Sandbox(options)
    app.router.add_route("*", r"/{lang:en|ru|ua|it}/api/{method:.+}", handle_api)
    app.router.add_get(FILES_PATH + "/{name}", download)
    admin.add_routes(app)
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_on_shutdown)
    return app


async def serve(options: SandboxOptions) -> None:
    """Serve until cancelled; then stop accepting, wake hanging requests and clean up."""
    runner = web.AppRunner(build_app(options), shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, options.host, options.port)
        await site.start()
        log.info("sandbox_listening", host=options.host, port=options.port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
