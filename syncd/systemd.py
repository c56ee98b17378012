"""The sd_notify protocol (READY, STATUS, WATCHDOG, STOPPING) without a dependency: one datagram
to $NOTIFY_SOCKET, abstract-namespace aware. Owns nothing else; outside systemd it does nothing.
It never raises: a notification that cannot be sent is logged once at debug level.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


def format_message(fields: Mapping[str, str | int]) -> bytes:
    """`{"READY": 1, "STATUS": "x"}` -> b"READY=1\\nSTATUS=x"; values are made single-line."""
    lines = []
    for key, value in fields.items():
        text = " ".join(str(value).split("\n"))
        lines.append(f"{key}={text}")
    return "\n".join(lines).encode()


def socket_address(notify_socket: str) -> str | bytes:
    """$NOTIFY_SOCKET as a socket address: a leading "@" means Linux's abstract namespace."""
    if notify_socket.startswith("@"):
        return b"\0" + notify_socket[1:].encode()
    return notify_socket


class Notifier:
    """Talks to systemd when started by it (Type=notify); a no-op otherwise."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._address = (
            socket_address(environ["NOTIFY_SOCKET"]) if environ.get("NOTIFY_SOCKET") else None
        )
        self._watchdog_usec = _watchdog_usec(environ)
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None without a watchdog."""
        return self._watchdog_usec / 2_000_000 if self._watchdog_usec else None

    def notify(self, **fields: str | int) -> bool:
        if self._address is None:
            return False
        message = format_message(fields)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(message, self._address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.debug("sd_notify_failed", error=str(exc))
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify(READY=1, STATUS=status, MAINPID=os.getpid())

    def status(self, status: str) -> bool:
        return self.notify(STATUS=status)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1) if self._watchdog_usec else False

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(STOPPING=1, STATUS=status)


def _watchdog_usec(environ: Mapping[str, str]) -> int | None:
    """WATCHDOG_USEC if it is meant for this process (WATCHDOG_PID absent or ours)."""
    pid = environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec if usec > 0 else None
