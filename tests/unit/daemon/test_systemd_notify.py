"""sd_notify: datagrams reach a real unix socket (path and abstract namespace), outside systemd
nothing is sent, and the watchdog only pings when systemd asked for it."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.systemd import Notifier, format_message, socket_address


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(1)
    yield sock, path
    sock.close()


def test_messages_are_key_value_lines_and_values_stay_on_one_line() -> None:
    assert format_message({"READY": 1, "STATUS": "a\nb"}) == b"READY=1\nSTATUS=a b"


def test_ready_status_and_stopping_arrive_on_the_socket(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.ready("news: waiting")
    assert sock.recv(4096) == f"READY=1\nSTATUS=news: waiting\nMAINPID={os.getpid()}".encode()
    assert notifier.status("news: succeeded")
    assert sock.recv(4096) == b"STATUS=news: succeeded"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping"


def test_abstract_namespace_socket_is_used_for_an_at_sign() -> None:
    name = f"syncd-test-{os.getpid()}"
    assert socket_address("@" + name) == b"\0" + name.encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(1)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).status("x")
        assert sock.recv(100) == b"STATUS=x"


def test_watchdog_pings_only_when_systemd_asked_for_this_pid(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    assert not Notifier({"NOTIFY_SOCKET": path}).watchdog()
    other_pid = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"})
    assert other_pid.watchdog_interval is None
    assert not other_pid.watchdog()
    ours = Notifier(
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    )
    assert ours.watchdog_interval == 5.0
    assert ours.watchdog()
    assert sock.recv(100) == b"WATCHDOG=1"


def test_outside_systemd_or_with_a_dead_socket_nothing_breaks(tmp_path: Path) -> None:
    assert not Notifier({}).enabled
    assert not Notifier({}).ready("x")
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "missing")}).status("x")
