"""Alert delivery: the channels (a webhook POST, a command) and the retry loop around them. Owns
the alerts' only I/O and its own aiohttp client. Never raises: a channel that fails is logged
once per alert (`alert_delivery_failed`: channel, attempts, error type) and the caller goes on.

An attempt's failure is described by a short type only (`http_503`, `exit_2`, `timeout`, an
exception class): never the far side's text, never the URL (the webhook URL holds a token; it is
registered for log redaction and not logged).

    failure                                          retried
    connection error, timeout, HTTP 5xx/408/429       yes
    a command's non-zero exit or timeout              yes
    HTTP 3xx/4xx, an unusable URL, a missing command  no
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import structlog

from syncd import __version__
from syncd.alerts.model import Alert
from syncd.api import RetryPolicy
from syncd.api.retry import Uniform
from syncd.config import AlertsConfig, Secret
from syncd.logs import redact, register_secret

log = structlog.get_logger(__name__)

RETRY_BASE = 1.0  # seconds: the first back-off is 0.5-1 s, then it doubles
RETRY_CAP = 30.0  # seconds: no single back-off is longer
MAX_ANSWER_BYTES = 64 * 1024  # what is read of a webhook's answer (then dropped)
USER_AGENT = f"syncd/{__version__} (alerts)"
# Not handed to a command: it gets the alert, not syncd's credentials.
WITHHELD_ENV = ("SELZY_API_KEY", "PGPASSWORD")
RETRYABLE_HTTP = frozenset({408, 429})  # and every 5xx


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one attempt failed: a short type (never the far side's text) and whether to retry."""

    error: str
    retryable: bool


class Channel(Protocol):
    """Somewhere alerts go. `attempt` tries once and never raises; `aclose` frees what it holds."""

    name: str

    async def attempt(self, alert: Alert) -> Failure | None: ...

    async def aclose(self) -> None: ...


def retry_delay(policy: RetryPolicy, attempt: int, retryable: bool, rng: Uniform) -> float | None:
    """Seconds before the next attempt after attempt `attempt` (1-based) failed, or None to give
    up. Exponential back-off with "equal jitter": half of min(cap, base x 2^(attempt-1)) fixed,
    the other half random, so that a retry always waits and retries never go in lockstep."""
    if not retryable or attempt >= policy.max_attempts:
        return None
    ceiling = min(policy.cap, policy.base * 2.0 ** min(attempt - 1, 60))
    return ceiling / 2 + rng.uniform(0.0, ceiling / 2)


def retry_policy(config: AlertsConfig) -> RetryPolicy:
    return RetryPolicy(max_attempts=config.attempts, base=RETRY_BASE, cap=RETRY_CAP)


async def deliver(
    channel: Channel, alert: Alert, policy: RetryPolicy, rng: Uniform | None = None
) -> bool:
    """Send `alert` through `channel`, retrying as `policy` says; True once it was taken."""
    rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
    attempt = 0
    while True:
        attempt += 1
        try:
            failure = await channel.attempt(alert)
        except Exception as exc:  # a bug in a channel must not reach the run
            failure = Failure(type(exc).__name__, retryable=False)
        if failure is None:
            log.info(
                "alert_sent", channel=channel.name, job=alert.job, kind=alert.kind, attempts=attempt
            )
            return True
        delay = retry_delay(policy, attempt, failure.retryable, rng)
        if delay is None:
            log.error(
                "alert_delivery_failed",
                channel=channel.name,
                job=alert.job,
                kind=alert.kind,
                attempts=attempt,
                error_type=failure.error,
            )
            return False
        await asyncio.sleep(delay)


def build_channels(config: AlertsConfig) -> list[Channel]:
    """The channels [alerts] configures, webhook first."""
    channels: list[Channel] = []
    if config.webhook_url:
        channels.append(WebhookChannel(config.webhook_url, timeout=config.timeout))
    if config.command:
        channels.append(CommandChannel(config.command, timeout=config.timeout))
    return channels


def register_webhook_secret(url: str) -> None:
    """Keep the URL, and the parts of it that carry a token, out of every log line."""
    register_secret(url)
    parts = urlsplit(url)
    for value in (parts.path, parts.password, *(v for _, v in parse_qsl(parts.query))):
        if value and len(value) >= 8 and value.strip("/"):
            register_secret(value)


class WebhookChannel:
    """POSTs {"text": alert.text} (what Slack, Mattermost and Rocket.Chat incoming webhooks
    accept); any 2xx answer is success. Redirects are not followed."""

    name = "webhook"

    def __init__(self, url: Secret, *, timeout: float) -> None:
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        register_webhook_secret(url.reveal())

    def __repr__(self) -> str:
        return "WebhookChannel(url=Secret('**********'))"

    async def attempt(self, alert: Alert) -> Failure | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"User-Agent": USER_AGENT}
            )
        try:
            async with self._session.post(
                self._url.reveal(), json={"text": redact(alert.text)}, allow_redirects=False
            ) as response:
                await response.content.read(MAX_ANSWER_BYTES)
                status = response.status
        except TimeoutError:
            return Failure("timeout", retryable=True)
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
            return Failure(type(exc).__name__, retryable=False)
        except aiohttp.ClientError as exc:
            return Failure(type(exc).__name__, retryable=True)
        if 200 <= status < 300:
            return None
        return Failure(f"http_{status}", retryable=status >= 500 or status in RETRYABLE_HTTP)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class CommandChannel:
    """Runs the command (split like a shell would; no shell runs it) with the alert as one JSON
    line on stdin; exit status 0 is success. It inherits syncd's environment without syncd's
    credentials, and its stderr; its stdout is dropped."""

    name = "command"

    def __init__(
        self,
        command: str,
        *,
        timeout: float,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._argv: Sequence[str] = shlex.split(command)
        self._timeout = timeout
        source = os.environ if environ is None else environ
        self._env = {k: v for k, v in source.items() if k not in WITHHELD_ENV}

    async def attempt(self, alert: Alert) -> Failure | None:
        payload = json.dumps(alert.as_json(), ensure_ascii=False)
        data = (redact(payload) + "\n").encode()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                env=self._env,
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            return Failure(type(exc).__name__, retryable=False)
        except OSError as exc:  # out of processes, file descriptors, ...: maybe later
            return Failure(type(exc).__name__, retryable=True)
        try:
            async with asyncio.timeout(self._timeout):
                await proc.communicate(data)
        except TimeoutError:
            return Failure("timeout", retryable=True)
        finally:
            if proc.returncode is None:  # timed out or cancelled: it must not outlive us
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            return Failure(f"exit_{proc.returncode}", retryable=True)
        return None

    async def aclose(self) -> None:
        return None
