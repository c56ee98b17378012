"""Benchmark: the sandbox with 1,000,000 contacts — seed, async export, download — and its peak RSS.

Starts `python -m syncd.sandbox` on a free port, seeds N contacts via /_sandbox/seed, runs
async/exportContacts + getTaskResult + the download (counting rows), then reads VmHWM of the
sandbox process from /proc. Usage: python bench/sandbox_export.py [--count N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

API_KEY = "bench-key"
FIELDS = ["email", "email_status", "email_list_ids", "email_unsubscribed_list_ids", "Name"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def memory_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


async def wait_up(session: aiohttp.ClientSession, root: str) -> None:
    for _ in range(300):
        try:
            async with session.get(f"{root}/_sandbox/") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("sandbox did not start")


async def api(
    session: aiohttp.ClientSession, root: str, method: str, form: list[tuple[str, str]]
) -> dict[str, Any]:
    async with session.post(f"{root}/en/api/{method}", data=[("api_key", API_KEY), *form]) as r:
        body = await r.json()
    if "error" in body:
        raise RuntimeError(f"{method}: {body}")
    return dict(body["result"])


async def run(count: int) -> None:
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncd.sandbox", "--port", str(port), "--export-delay", "0",
        env={**os.environ, "SELZY_API_KEY": API_KEY},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    timeout = aiohttp.ClientTimeout(total=600)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await wait_up(session, root)
            rss_idle = memory_kb(proc.pid, "VmRSS")
            started = time.monotonic()
            async with session.post(
                f"{root}/_sandbox/seed",
                json={"list_id": 1, "count": count, "fields": {"Name": "User {i}"}},
            ) as r:
                seeded = await r.json()
            seed_s = time.monotonic() - started
            rss_after_seed = memory_kb(proc.pid, "VmRSS")

            started = time.monotonic()
            form = [("list_id", "1"), *[("field_names[]", f) for f in FIELDS]]
            task = await api(session, root, "async/exportContacts", form)
            while True:
                result = await api(
                    session, root, "async/getTaskResult", [("task_uuid", task["task_uuid"])]
                )
                if result["status"] == "completed":
                    break
                await asyncio.sleep(0.1)
            ready_s = time.monotonic() - started
            rows, size = -1, 0  # the header line is not a contact
            async with session.get(result["file_to_download"]) as r:
                tail = b""
                async for chunk in r.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    rows += chunk.count(b"\n")
                    tail = chunk[-1:]
            export_s = time.monotonic() - started
            assert tail == b"\n"
            peak = memory_kb(proc.pid, "VmHWM")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
    print(f"contacts seeded:        {seeded['inserted']:>12,} in {seed_s:.1f} s")
    print(f"export task completed:  {ready_s:>12.1f} s after async/exportContacts")
    print(f"export downloaded:      {rows:>12,} rows, {size / 1e6:.1f} MB, {export_s:.1f} s total")
    print(f"sandbox RSS idle:       {rss_idle / 1024:>12.1f} MB")
    print(f"sandbox RSS after seed: {rss_after_seed / 1024:>12.1f} MB")
    print(f"sandbox peak RSS:       {peak / 1024:>12.1f} MB (VmHWM)")
    if rows != count:
        raise SystemExit(f"expected {count} rows, got {rows}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1_000_000)
    asyncio.run(run(parser.parse_args().count))


if __name__ == "__main__":
    main()
