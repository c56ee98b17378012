"""The daemon's HTTP side (aiohttp server): the notify_url callback receiver, /healthz and /metrics
on one or two listeners. It owns routing, body limits and status codes; what a callback means is
callbacks.py's business, what health and metrics say is handed in as two coroutines.

Access logging is off: a callback URL carries its token, which is a credential.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from syncd.errors import ConfigError, SyncdError
from syncd.web.callbacks import CallbackRegistry, Verdict
from syncd.web.events import EventReceiver

log = structlog.get_logger(__name__)

HealthSource = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
MetricsSource = Callable[[str], Awaitable[tuple[bytes, str]]]  # Accept header -> body, type
SHUTDOWN_TIMEOUT = 5.0  # seconds to let open HTTP requests finish on stop
DEFAULT_MAX_BODY = 1024 * 1024  # for listeners without callbacks (they take no bodies anyway)


def parse_listen(listen: str, key: str = "listen") -> tuple[str, int]:
    """ "127.0.0.1:8089" / "[::1]:8089" / "localhost:0" -> (host, port); ConfigError otherwise."""
    host, sep, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{key}: expected host:port, got {listen!r}")
    return host, int(port_text)


def callback_prefix(public_url: str) -> str:
    """The path part of public_url, without a trailing slash: tokens are appended after it."""
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"webhook.public_url: expected an http(s) URL, got {public_url!r}")
    if parts.query or parts.fragment:
        raise ConfigError("webhook.public_url: must not carry a query or fragment")
    return parts.path.rstrip("/")


@dataclass(frozen=True, slots=True)
class Listener:
    host: str
    port: int
    callbacks: bool  # serve the notify_url endpoint here
    name: str  # "webhook" | "metrics" (for the log)


class WebServer:
    """Starts every listener; `stop()` closes them. Addresses actually bound are in `bound`."""

    def __init__(
        self,
        listeners: list[Listener],
        *,
        health: HealthSource,
        metrics: MetricsSource,
        callbacks: CallbackRegistry | None = None,
        public_url: str = "",
        max_body_bytes: int = DEFAULT_MAX_BODY,
        events: EventReceiver | None = None,
    ) -> None:
        self._listeners = listeners
        self._events = events  # served beside the callbacks (`<prefix>/events/<secret>`)
        self._health = health
        self._metrics = metrics
        self._callbacks = callbacks
        self._prefix = callback_prefix(public_url) if callbacks is not None else ""
        self._max_body = max_body_bytes
        self._runners: list[web.AppRunner] = []
        self.bound: dict[str, tuple[str, int]] = {}

    def build_app(self, *, with_callbacks: bool) -> web.Application:
        app = web.Application(
            client_max_size=self._max_body if with_callbacks else DEFAULT_MAX_BODY
        )
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_handler)
        if with_callbacks and self._callbacks is not None:
            app.router.add_post(self._prefix + "/{token}", self._callback)
        if with_callbacks and self._events is not None:
            self._events.add_routes(app)
        return app

    async def start(self) -> None:
        for listener in self._listeners:
            runner = web.AppRunner(
                self.build_app(with_callbacks=listener.callbacks),
                access_log=None,
                handle_signals=False,
                shutdown_timeout=SHUTDOWN_TIMEOUT,
            )
            await runner.setup()
            self._runners.append(runner)
            site = web.TCPSite(runner, listener.host, listener.port, reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                # not a ConfigError (exit 78): a port still held by a previous process is
                # transient, and systemd should try again
                raise SyncdError(
                    f"{listener.name}.listen: cannot listen on {listener.host}:{listener.port}: "
                    f"{exc.strerror or exc}"
                ) from exc
            host, port = _bound_address(runner, listener)
            self.bound[listener.name] = (host, port)
            log.info(
                "web_listening",
                listener=listener.name,
                host=host,
                port=port,
                callbacks=listener.callbacks,
                callback_path=(self._prefix + "/<token>") if listener.callbacks else None,
            )

    async def stop(self) -> None:
        while self._runners:
            await self._runners.pop().cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        try:
            healthy, body = await self._health()
        except Exception as exc:  # the database is down: that is unhealthy, not a crash
            log.warning("healthz_failed", error=str(exc))
            healthy, body = False, {"status": "unhealthy", "error": type(exc).__name__}
        return web.json_response(body, status=200 if healthy else 503)

    async def _metrics_handler(self, request: web.Request) -> web.Response:
        body, content_type = await self._metrics(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _callback(self, request: web.Request) -> web.Response:
        assert self._callbacks is not None  # the route exists only with callbacks  # noqa: S101
        if request.content_length is not None and request.content_length > self._max_body:
            log.warning("callback_rejected", reason="too_large", bytes=request.content_length)
            return _verdict_response(413, "too large")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            log.warning("callback_rejected", reason="too_large")
            return _verdict_response(413, "too large")
        try:
            body: Any = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            body = None
        verdict = self._callbacks.deliver(request.match_info["token"], body)
        return _verdict_response(verdict.value, verdict.name.lower())


def _verdict_response(status: int, text: str) -> web.Response:
    # Selzy only needs a 2xx to stop retrying; the body helps a human with curl.
    if status == Verdict.NOT_COMPLETED.value:
        status = 200
    return web.json_response({"result": text}, status=status)


def _bound_address(runner: web.AppRunner, listener: Listener) -> tuple[str, int]:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        for sock in getattr(server, "sockets", None) or ():
            address = sock.getsockname()
            return str(address[0]), int(address[1])
    return listener.host, listener.port
