"""Driving `syncd` as an operator does, for e2e tests: the real CLI (`python -m syncd`) in a
subprocess, with a TOML config written from the reconcile Harness and SELZY_API_KEY in the
child's environment. The child is started with asyncio.create_subprocess_exec so the in-process
`sandbox` fixture keeps serving in the test's event loop while the child talks to it.

Owns no fixtures and never reaches into syncd's internals: only the command line, its exit
status, its output and `syncd runs --json`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.reconcile.harness import Harness

CLI_TIMEOUT = 60.0  # seconds one command may take before the test fails


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def events(self, name: str) -> list[dict[str, Any]]:
        """The JSON log lines whose event is `name`, in order."""
        found = []
        for line in (self.out + self.err).splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == name:
                    found.append(record)
        return found


@dataclass(frozen=True)
class Cli:
    """One config file describing the harness's job (with overrides) and the commands on it."""

    harness: Harness
    config: Path

    @classmethod
    def write(cls, harness: Harness, directory: Path, **job_overrides: Any) -> Cli:
        job = dataclasses.replace(harness.job, **job_overrides)
        return cls(harness, harness.write_config(directory / "syncd.toml", job))

    def _env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k not in ("SELZY_API_KEY", "SYNCD_CONFIG")}
        return {**base, "SELZY_API_KEY": self.harness.sandbox.api_key}

    async def run(self, *args: str) -> Result:
        """`syncd -c CONFIG ARGS...` to completion."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "syncd",
            "-c",
            str(self.config),
            *args,
            env=self._env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    async def sync(self, *args: str) -> Result:
        return await self.run("sync", *args)

    async def runs(self, *args: str) -> list[dict[str, Any]]:
        """`syncd runs --json ARGS...`: the run log as a user reads it, newest first."""
        result = await self.run("runs", "--json", *args)
        assert result.code == 0, result
        runs = json.loads(result.out)
        assert isinstance(runs, list)
        return runs

    async def last_run(self) -> dict[str, Any]:
        [run] = await self.runs("--limit", "1")
        return run
