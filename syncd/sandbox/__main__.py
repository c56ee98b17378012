"""`python -m syncd.sandbox`: run the sandbox without the syncd CLI (same options as
`syncd sandbox`). The accepted API key comes from $SELZY_API_KEY (default "sandbox").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from pathlib import Path

from syncd.sandbox.app import serve
from syncd.sandbox.options import DEFAULT_API_KEY, DEFAULT_PORT, SandboxOptions


def parse_args(argv: list[str] | None = None) -> SandboxOptions:
    parser = argparse.ArgumentParser(prog="python -m syncd.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--state-file", type=Path, default=None)
    parser.add_argument("--export-delay", type=float, default=2.0)
    args = parser.parse_args(argv)
    return SandboxOptions(
        host=args.host,
        port=args.port,
        api_keys=(os.environ.get("SELZY_API_KEY") or DEFAULT_API_KEY,),
        export_delay=args.export_delay,
        state_file=args.state_file,
    )


async def _main(options: SandboxOptions) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None  # noqa: S101 - we are inside asyncio.run
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await serve(options)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_main(parse_args(argv)))


if __name__ == "__main__":
    main()
